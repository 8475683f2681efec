"""The shipped job configs (YAML), as package data: `core.config.config_path` finds them from a wheel
install too."""

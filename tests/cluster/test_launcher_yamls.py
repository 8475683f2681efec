"""Every cluster-launcher YAML validates against the schema shipped in the Ray package, as
written and as `ray up` completes it; GPU node types advertise their GPUs."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

import ray.autoscaler
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"
YAMLS = sorted(p for p in CLUSTER.glob("*.yaml") if p.name != "runtime_env.yaml")


def test_there_is_a_local_aws_and_gcp_launcher():
    assert {p.stem for p in YAMLS} >= {"local", "aws-gpu", "gcp-gpu"}


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_launcher_yaml_validates_against_rays_schema(path):
    config = yaml.safe_load(path.read_text())
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)  # as written
    validate_config(prepare_config(config))  # as `ray up` fills in the defaults
    for name, node in config.get("available_node_types", {}).items():
        if "gpu" in name:
            assert node["resources"].get("GPU", 0) >= 1, f"{path.name}: {name} must advertise its GPUs"


def test_runtime_env_pins_what_requirements_txt_pins():
    """The runtime env's pip list is requirements.txt's (minus the test tools) plus the torch pin."""
    env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    assert env["working_dir"] == "." and ".venv" in env["excludes"]
    root = CLUSTER.parent
    reqs = [line.strip() for line in (root / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    wanted = [r for r in reqs if not r.startswith(("pytest", "hypothesis"))]
    packages = env["pip"]["packages"]
    assert packages[0] == "torch==2.13.0" and "torch==2.13.0" in (root / "Makefile").read_text()
    assert packages[1:] == wanted
    from ray.runtime_env import RuntimeEnv

    RuntimeEnv(**{k: v for k, v in env.items() if k != "excludes"}, excludes=env["excludes"])  # Ray accepts it

from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from core.config import ConfigError, from_dict, load, require, to_yaml
from fl.config import SpryConfig


@dataclass
class Inner:
    lr: float = 0.1
    mode: Literal["a", "b"] = "a"
    steps: int | None = None

    def validate(self):
        require(self.lr > 0, "lr", f"must be > 0, got {self.lr}")


@dataclass
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    tags: list[str] = field(default_factory=list)


def test_defaults_and_overrides_are_typed():
    cfg = from_dict(Outer, {"inner": {"lr": 1}}, ["inner.mode=b", "inner.steps=5", "tags=[p, q]", "name=y"])
    assert cfg.inner.lr == 1.0 and isinstance(cfg.inner.lr, float)
    assert cfg.inner.mode == "b" and cfg.inner.steps == 5 and cfg.tags == ["p", "q"] and cfg.name == "y"


def test_unknown_key_names_key_and_allowed():
    with pytest.raises(ConfigError) as e:
        from_dict(Outer, {"inner": {"lrr": 1}})
    assert e.value.key == "inner.lrr" and "allowed keys here: lr, mode, steps" in str(e.value)


def test_invalid_literal_lists_allowed_values():
    with pytest.raises(ConfigError) as e:
        from_dict(Outer, {}, ["inner.mode=c"])
    assert e.value.key == "inner.mode" and "'a', 'b'" in str(e.value)


def test_wrong_type_and_range_errors_name_the_key():
    with pytest.raises(ConfigError, match="inner.steps"):
        from_dict(Outer, {"inner": {"steps": "many"}})
    with pytest.raises(ConfigError) as e:
        from_dict(Outer, {"inner": {"lr": -1}})
    assert e.value.key == "inner.lr"
    with pytest.raises(ConfigError, match="true or false"):
        from_dict(SpryConfig, {}, ["fl.prototype_head=3"])


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="key.path=value"):
        from_dict(Outer, {}, ["inner.lr"])


@dataclass
class Item:
    name: str = "a"
    limit: int = 1


@dataclass
class WithList:
    items: list[Item] = field(default_factory=list)


def test_overrides_reach_list_items_by_index():
    data = {"items": [{"name": "a"}, {"name": "b"}]}
    cfg = from_dict(WithList, data, ["items[1].limit=60", "items.0.name=z"])
    assert [(i.name, i.limit) for i in cfg.items] == [("z", 1), ("b", 60)]
    assert data["items"][1] == {"name": "b"}  # the loaded YAML is not mutated
    with pytest.raises(ConfigError) as e:
        from_dict(WithList, data, ["items[2].limit=3"])
    assert e.value.key == "items[2]" and "has 2 items" in str(e.value)
    with pytest.raises(ConfigError) as e:
        from_dict(Outer, {}, ["name[0]=3"])
    assert e.value.key == "name[0]" and "'name' is not a list" in str(e.value)
    with pytest.raises(ConfigError, match="'inner.lr' is not a section"):
        from_dict(Outer, {"inner": {"lr": 1}}, ["inner.lr.x=3"])


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load(Outer, tmp_path / "nope.yaml")


def test_spry_cross_field_and_ranges():
    with pytest.raises(ConfigError) as e:
        from_dict(SpryConfig, {}, ["partition.num_clients=3", "fl.clients_per_round=5"])
    assert e.value.key == "fl.clients_per_round"
    for item, key in [("fl.rounds=0", "fl.rounds"), ("partition.alpha=0", "partition.alpha"),
                      ("partition.alpha=-1", "partition.alpha"), ("fl.optimizer=lbfgs", "fl.optimizer")]:
        with pytest.raises(ConfigError) as e:
            from_dict(SpryConfig, {}, [item])
        assert e.value.key == key


def test_resolved_config_round_trips(tiny_yaml):
    cfg = load(SpryConfig, tiny_yaml, ["fl.rounds=7"])
    again = from_dict(SpryConfig, yaml.safe_load(to_yaml(cfg)))
    assert again == cfg and again.fl.rounds == 7


def test_shipped_configs_load():
    from pathlib import Path

    for path in sorted((Path(__file__).parents[2] / "configs" / "spry").glob("*.yaml")):
        load(SpryConfig, path)

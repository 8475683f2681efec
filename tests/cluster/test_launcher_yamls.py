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

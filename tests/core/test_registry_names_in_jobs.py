"""Registry names resolve in every job's config validation: each place that takes a model, a
teacher LLM or an encoder accepts the short names (and fails, naming the field and the make target,
for one that is not installed; naming the field and the allowed names for an unknown one)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core import registry
from core.config import ConfigError, from_dict

ROOT = Path(__file__).resolve().parents[2]


def _job(name: str):
    if name == "gold":
        from distill.experiment import GoldJobConfig as C
    elif name == "refusion":
        from retrieval.experiment import RefusionConfig as C
    elif name == "curation":
        from curation.config import CurationConfig as C
    elif name == "spry":
        from fl.config import SpryConfig as C
    else:
        from compression.config import CompressionConfig as C
    return C, yaml.safe_load((ROOT / "configs" / name / "tiny.yaml").read_text())


# (job, the config key that takes a model, the kinds of registry model it takes)
PLACES = [
    ("gold", "gold.teacher.llamacpp.model", {"gguf"}),
    ("gold", "gold.teacher.hf.model.name", {"gguf"}),
    ("gold", "gold.student.model.name", {"encoder"}),
    ("refusion", "model.name", {"encoder"}),
    ("refusion", "corpus.encoder", {"encoder"}),
    ("curation", "embed.model", {"encoder"}),
    ("spry", "model.name", {"encoder"}),
    ("compression", "model.name", {"gguf"}),
]


def _set(data: dict, key: str, value) -> dict:
    node = data
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    if key.startswith("gold.teacher.llamacpp"):
        data["gold"]["teacher"]["backend"] = "llamacpp"
    return data


def _validate(job: str, key: str, value):
    cls, data = _job(job)
    return from_dict(cls, _set(data, key, value))


@pytest.mark.parametrize("job,key,kinds", PLACES, ids=[f"{j}:{k}" for j, k, _ in PLACES])
def test_registry_names_resolve_in_job_validation(job, key, kinds):
    names = [n for n, s in registry.REGISTRY.items() if s.kind in kinds]
    assert names
    for name in names:
        if registry.installed(name):
            _validate(job, key, name)  # accepted as it is
        else:
            with pytest.raises(ConfigError) as e:
                _validate(job, key, name)
            assert e.value.key == key and f"make {registry.spec(name).make_target}" in str(e.value)


@pytest.mark.parametrize("job,key,kinds", PLACES, ids=[f"{j}:{k}" for j, k, _ in PLACES])
def test_an_unknown_name_names_the_field_and_the_registry(job, key, kinds):
    with pytest.raises(ConfigError) as e:
        _validate(job, key, "qwen2.5-coder-15b")  # a typo
    assert e.value.key == key and "qwen2.5-coder-1.5b" in str(e.value)

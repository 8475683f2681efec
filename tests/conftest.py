"""Shared fixtures. Tests that need Ray share one Ray instance per session and run on one
xdist worker: mark them `RAY` (below), which `--dist loadgroup` keeps together."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Two xdist workers on two cores: one thread each, or the workers' torch pools oversubscribe
# the cores and small tensor ops slow down by orders of magnitude.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


RAY = [pytest.mark.ray, pytest.mark.xdist_group("ray")]


def pytest_configure(config):
    config.addinivalue_line("markers", "ray: needs the session's Ray instance (runs on one xdist worker)")
    config.addinivalue_line("markers", "slow: an end-to-end test of a job or a real model (seconds to minutes)")


def pytest_collection_modifyitems(config, items):
    """End-to-end tests count as slow without anyone remembering to mark them: the job tests
    (tests/ray_jobs/) and every test that needs the session's Ray. `make test` runs the unit tests
    (-m "not slow") first, so a broken unit fails CI in minutes."""
    for item in items:
        if "ray_jobs" in item.path.parts or "ray_session" in getattr(item, "fixturenames", ()) \
                or item.get_closest_marker("ray") is not None:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def ray_session():
    import ray

    from core.ray import init_ray

    os.environ.pop("RAY_ADDRESS", None)
    init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_yaml():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "configs" / "spry" / "tiny.yaml"


# What a shipped config's registry model is parsed as in a unit test when it is not installed:
# `make test` installs these two, `make models` the larger ones the laptop and cluster configs name.
STAND_INS = {"gguf": "smollm2-135m", "encoder": "minilm", "causal-lm": "smollm2-135m"}


def with_installed_models(raw):
    """`raw` (a parsed YAML config) with every registry model name that is not installed here
    replaced by the installed model of its kind (STAND_INS), for tests of what a config plans or
    sets rather than of the model: config validation rightly refuses a model that is not installed."""
    from core import registry

    if isinstance(raw, dict):
        return {k: with_installed_models(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [with_installed_models(v) for v in raw]
    if isinstance(raw, str) and raw in registry.REGISTRY and not registry.installed(raw):
        return STAND_INS[registry.spec(raw).kind]
    return raw


def load_shipped(cls, path, overrides=None):
    """core.config.load of a shipped config, its uninstalled registry models swapped for installed
    ones (with_installed_models)."""
    from pathlib import Path

    import yaml

    from core.config import from_dict

    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return from_dict(cls, with_installed_models(raw), overrides)

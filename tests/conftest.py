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

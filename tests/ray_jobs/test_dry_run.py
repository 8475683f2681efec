"""--dry-run: every job's laptop and cluster configs validate and plan against resource maps, and a
request the cluster cannot meet is refused naming the field (no Ray needed)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import ConfigError
from tests.conftest import load_shipped
from ray_jobs import plans

REPO = Path(__file__).resolve().parents[2]
GPU_CLUSTER = {"CPU": 96.0, "GPU": 8.0, "memory": 4e11}
LAPTOP = {"CPU": 2.0, "GPU": 0.0}


def _cfg(job, name):
    from compression.config import CompressionConfig
    from curation.config import CurationConfig
    from distill.experiment import GoldJobConfig
    from fl.config import SpryConfig
    from retrieval.experiment import RefusionConfig
    from ray_jobs.cli import CONFIG_DIRS

    cls = {"spry": SpryConfig, "curate": CurationConfig, "compress": CompressionConfig, "refusion": RefusionConfig,
           "gold": GoldJobConfig}[job]
    return load_shipped(cls, REPO / "configs" / CONFIG_DIRS.get(job, job) / f"{name}.yaml")


JOBS = ["spry", "curate", "compress", "refusion", "gold"]


@pytest.mark.parametrize("job", JOBS)
def test_cluster_configs_plan_on_a_gpu_cluster_and_are_refused_on_a_laptop(job):
    cfg = _cfg(job, "cluster")
    lines = getattr(plans, f"plan_{job}")(cfg, GPU_CLUSTER)
    assert any("GPU" in line and "0 GPU" not in line for line in lines), lines  # the plan uses the GPUs
    with pytest.raises(ConfigError) as err:
        getattr(plans, f"plan_{job}")(cfg, LAPTOP)
    assert "GPU" in str(err.value) and err.value.key  # the field asking for GPUs is named


def _laptop_scale_configs():
    from ray_jobs.cli import CONFIG_DIRS

    return [(job, p.stem) for job in JOBS
            for p in sorted((REPO / "configs" / CONFIG_DIRS.get(job, job)).glob("*.yaml")) if p.stem != "cluster"]


@pytest.mark.parametrize(("job", "name"), _laptop_scale_configs())
def test_laptop_scale_configs_plan_on_two_cores(job, name):
    lines = getattr(plans, f"plan_{job}")(_cfg(job, name), LAPTOP)
    assert lines and all(isinstance(line, str) for line in lines)


def test_dry_run_from_the_command_line_prints_the_plan_and_exits_0():
    proc = subprocess.run([sys.executable, "-m", "ray_jobs.spry", "--config", "configs/spry/laptop.yaml", "--dry-run"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "RAY_ADDRESS": ""})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "dry run of spry" in proc.stdout and "Flower client actors: 5 per round" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "ray_jobs.spry", "--config", "configs/spry/cluster.yaml", "--dry-run"],
                         cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "RAY_ADDRESS": ""})
    assert bad.returncode == 2 and "resources.num_gpus" in bad.stderr

"""Running a job the way a user does: `python -m ray_jobs.NAME --config ...` in a fresh process."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_job(job: str, config: str, tmp_path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """The job's process, its runs under tmp_path/runs; args are more CLI arguments (--set ...)."""
    cmd = [sys.executable, "-m", f"ray_jobs.{job}", "--config", config, "--set", f"run.root={tmp_path}/runs", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)

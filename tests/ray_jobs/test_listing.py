"""`python -m ray_jobs` lists every job module, found from the package itself."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_job_module_is_listed_with_its_docstring():
    from ray_jobs.__main__ import NOT_JOBS, jobs

    on_disk = {p.stem for p in (REPO / "ray_jobs").glob("*.py")} - NOT_JOBS - {"__init__"}
    listed = jobs()
    assert set(listed) == on_disk
    assert "gold" in listed and listed["spry"].startswith("Spry")
    out = subprocess.run([sys.executable, "-m", "ray_jobs"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for job in on_disk:
        assert f"python -m ray_jobs.{job} --config" in out.stdout

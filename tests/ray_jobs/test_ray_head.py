"""A real Ray head (`ray start --head` on 127.0.0.1 with the dashboard) and jobs submitted to it
with `ray job submit --working-dir .`, as a user does against a cluster.

The head gets its own ports and temp dir, apart from the session's embedded Ray, and is stopped
at the end even when a test fails: by its process group and then by its temp dir, never with
`ray stop` (which would also stop the session's Ray)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import RAY

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The commands run as README.md and cluster/README.md show them: `source .venv/bin/activate`, then
# plain `ray` and `python`, from a PATH that does not hold the venv. A job's `python` is then the
# venv's only because the head was started from the activated venv, as a user's would be.
ACTIVATE = BIN / "activate"
PLAIN_PATH = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != BIN)


def _activated(cmd: list[str]) -> list[str]:
    import shlex

    return ["bash", "-c", f"source {shlex.quote(str(ACTIVATE))} && exec {shlex.join(cmd)}"]
# With the session's Ray on the same two cores; the head's jobs wait for that worker's tests.
pytestmark = RAY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, temp: str) -> None:
    import psutil

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    # raylet, gcs_server, the dashboard and every worker carry the temp dir in their arguments
    left = [p for p in psutil.process_iter(["cmdline"]) if temp in " ".join(p.info["cmdline"] or [])]
    for p in left:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(left, timeout=10)
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_head():
    temp = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    dashboard = _free_port()
    env = {**os.environ, "PATH": PLAIN_PATH, "RAY_ADDRESS": "", "PYTHONPATH": str(REPO)}
    env.pop("VIRTUAL_ENV", None)
    cmd = ["ray", "start", "--head", "--block", "--num-cpus", "2", "--node-ip-address", "127.0.0.1",
           "--port", str(_free_port()), "--include-dashboard=true", "--dashboard-host", "127.0.0.1",
           "--dashboard-port", str(dashboard), "--ray-client-server-port", str(_free_port()),
           "--dashboard-agent-listen-port", str(_free_port()), "--temp-dir", temp, "--disable-usage-stats"]
    proc = subprocess.Popen(_activated(cmd), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{address}/api/version", timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the Ray head did not come up (exit code {proc.poll()})") from None
                time.sleep(1)
        yield address, env
    finally:
        _stop(proc, temp)


def _submit(address: str, env: dict, args: list[str], submission_id: str) -> subprocess.CompletedProcess:
    cmd = ["ray", "job", "submit", "--address", address, "--working-dir", ".",
           "--submission-id", submission_id, "--", "python", "-m", *args]
    return subprocess.run(_activated(cmd), cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def test_submitted_spry_job_succeeds_and_writes_its_run(ray_head, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    address, env = ray_head
    root, store = tmp_path / "runs", tmp_path / "store"
    proc = _submit(address, env, ["ray_jobs.spry", "--config", "configs/spry/tiny.yaml", "--set", f"run.root={root}",
                                  "--set", f"run.storage_path={store.as_uri()}"], "spry-ok")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = JobSubmissionClient(address)
    assert client.get_job_status("spry-ok") == JobStatus.SUCCEEDED
    logs = client.get_job_logs("spry-ok")
    (run,) = list((root / "spry").iterdir())
    assert f"run directory: {run}" in logs
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows if "train_loss" in r] == [1, 2, 3]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    assert (run / "summary.md").is_file()
    # the storage path got the whole run, as it would be a bucket on a cluster
    copied = store / "spry" / run.name
    assert (copied / "summary.md").read_text() == (run / "summary.md").read_text()
    assert (copied / "metrics.jsonl").read_text() == (run / "metrics.jsonl").read_text()


@pytest.mark.parametrize(("job", "config"), [("compress", "configs/compression/tiny.yaml"),
                                           ("refusion", "configs/refusion/tiny.yaml"), ("gold", "configs/gold/tiny.yaml")])
def test_submitted_method_jobs_succeed_and_write_their_runs(ray_head, tmp_path, job, config):
    from ray.job_submission import JobStatus, JobSubmissionClient

    address, env = ray_head
    root = tmp_path / "runs"
    proc = _submit(address, env, [f"ray_jobs.{job}", "--config", config, "--set", f"run.root={root}"], f"{job}-ok")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = JobSubmissionClient(address)
    assert client.get_job_status(f"{job}-ok") == JobStatus.SUCCEEDED
    (run,) = list((root / job).iterdir())
    assert f"run directory: {run}" in client.get_job_logs(f"{job}-ok")
    assert "|" in (run / "summary.md").read_text()  # its results table


def test_submitted_job_with_a_bad_config_exits_2_naming_the_field(ray_head, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    address, env = ray_head
    proc = _submit(address, env, ["ray_jobs.spry", "--config", "configs/spry/tiny.yaml", "--set", "fl.rounds=0",
                                  "--set", f"run.root={tmp_path / 'runs'}"], "spry-bad")
    assert proc.returncode != 0
    client = JobSubmissionClient(address)
    info = client.get_job_info("spry-bad")
    assert info.status == JobStatus.FAILED
    assert info.driver_exit_code == 2
    assert "fl.rounds" in client.get_job_logs("spry-bad")
    assert not (tmp_path / "runs").exists(), "a rejected config left a run directory behind"

"""The ReFusion job: bad input exits 2 naming the field before Ray starts; a tiny run drives every
arm through Ray Tune trials (dev accuracy reported with checkpoints) and writes the table."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.ray_jobs.jobs import REPO, run_job

TINY = "configs/refusion/tiny.yaml"


def _run(tmp_path, *args):
    return run_job("refusion", TINY, tmp_path, "--set", f"corpus.cache_dir={tmp_path}/cache", *args)


@pytest.mark.parametrize(
    "override,message",
    [
        ("k=100000", "'k': k=100000 is above the corpus size"),
        ("model.name=tiny-llama", "'model.name': a llama encoder has no supported key/value projections; "
                                  "supported families: bert, roberta"),
        ("model.name=/no/such/encoder", "'model.name'"),
        ("corpus.min_chars=100000", "'corpus.sources': the corpus is empty"),
        ("arms=[none, rag]", "'arms[1]': 'rag' is not allowed"),
    ],
)
def test_bad_input_exits_2_naming_the_field(tmp_path, override, message):
    proc = _run(tmp_path, "--set", override)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_tiny_run_drives_every_arm_through_tune(ray_session, tmp_path):
    from ray_jobs.refusion import main

    assert main(["--config", TINY, "--set", f"run.root={tmp_path}/runs", "--set", f"corpus.cache_dir={tmp_path}/cache"]) == 0
    (run,) = (tmp_path / "runs" / "refusion").iterdir()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert sorted(r["arm"] for r in rows) == ["concat", "none", "refusion", "tuned_choices"]
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in rows)
    refusion = next(r for r in rows if r["arm"] == "refusion")
    assert len(refusion["choices"]) == 4 and set(refusion["choices"].values()) <= {"none", "reranker", "ordered_mask"}
    results = json.loads((run / "results.json").read_text())
    cost = results["cost"]
    assert cost["concat"]["flops"] > 2 * cost["none"]["flops"]
    assert cost["none"]["latency_vs_none"] == 1.0 and all(c["latency_vs_none"] > 0 for c in cost.values())
    # every trial reported dev accuracy with a checkpoint along the way; once its study has
    # finished, only the last is left, with the trained weights
    trials = [p for p in (run / "tune").glob("*/*") if p.is_dir() and list(p.glob("checkpoint_*"))]
    assert len(trials) >= len(rows)
    for t in trials:
        (last,) = t.glob("checkpoint_*")
        assert (last / "model.pt").is_file() and (last / "choices.json").is_file()
        assert len((t / "result.json").read_text().splitlines()) > 1  # the evaluations along the way, then the end
    assert (run / "cache" / "test_neighbours.npz").is_file()
    assert "ReFusion" in (run / "summary.md").read_text()


@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_a_killed_run_resumes_keeping_its_finished_trials(tmp_path):
    """SIGKILL the driver once a trial has finished; --resume keeps that trial's result (it is not
    run again), runs the rest, and writes the table."""
    env = {**os.environ, "RAY_ADDRESS": "", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "ray_jobs.refusion", "--config", TINY, "--set", f"run.root={tmp_path}/runs",
           "--set", f"corpus.cache_dir={tmp_path}/cache", "--set", "arms=[none,refusion]", "--set", "seeds=[13,21]"]
    root = tmp_path / "runs" / "refusion"

    def finished_trials():
        return {p.parent.name for p in root.rglob("tune/arms/*/result.json") if '"done": true' in p.read_text()}

    def evaluations(trial_dir):
        return sum(not json.loads(x).get("done") for x in (trial_dir / "result.json").read_text().splitlines())

    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    # kill once the driver has recorded a finished trial and snapshotted the study after that: a
    # trial that finished after the last snapshot is, to the restored study, unfinished, and reruns
    deadline, seen, finished = time.time() + 500, None, set()
    try:
        while time.time() < deadline and not (seen and any(p.stat().st_mtime > seen for p in
                                                           root.rglob("tune/arms/experiment_state-*.json"))):
            if seen is None and (finished := finished_trials()):
                seen = time.time()
            time.sleep(0.2)
            assert proc.poll() is None, "the job ended before the kill"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    (run,) = root.iterdir()
    assert finished and not (run / "summary.md").exists()
    before = {name: evaluations(run / "tune" / "arms" / name) for name in finished}
    done = subprocess.run([sys.executable, "-m", "ray_jobs.refusion", "--resume", str(run)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert sorted((r["arm"], r["seed"]) for r in rows) == [("none", 13), ("none", 21), ("refusion", 13), ("refusion", 21)]
    for name, n in before.items():  # kept, not trained again
        assert evaluations(run / "tune" / "arms" / name) == n, name
    for t in (run / "tune" / "arms").iterdir():
        if t.is_dir():
            (last,) = t.glob("checkpoint_*")
            assert (last / "model.pt").is_file()
    assert "ReFusion" in (run / "summary.md").read_text()


def test_resume_refuses_a_folder_that_is_not_a_run(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ray_jobs.refusion", "--resume", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "'--resume'" in proc.stderr and "has no config.yaml" in proc.stderr

"""The GOLD job: an unreachable teacher fails before Ray Tune starts; a tiny run (2 GOLD trials and
ZeroGen under Tune, a pool actor for the teacher) writes the table and the generated data; a run
killed mid-study resumes with Tuner.restore from the trials' checkpoints."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = "configs/gold/tiny.yaml"


def _cmd(tmp_path, *args):
    return [sys.executable, "-m", "ray_jobs.gold", *args]


@pytest.mark.parametrize(
    "override,message",
    [
        ("gold.teacher.backend=openai", "'gold.teacher.openai.base_url'"),
        ("gold.iterations=0", "'gold.iterations': must be >= 1"),
        ("search.noise=[0.6]", "'search.noise'"),
        ("gold.task.label_names=[good]", "'gold.task.label_names'"),
        ("dev_size=10000000", "'dev_size'"),
        ("also_students=[minilm,nope-model]", "'also_students[1]'"),
        ("gold.teacher={backend: llamacpp, llamacpp: {model: qwen2.5-coder-15b}}", "'gold.teacher.llamacpp.model'"),
    ],
)
def test_bad_input_exits_2_naming_the_field(tmp_path, override, message):
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}
    proc = subprocess.run(_cmd(tmp_path, "--config", TINY, "--set", f"run.root={tmp_path}/runs", "--set", override),
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_a_killed_study_resumes_and_finishes(tmp_path):
    """SIGKILL the driver once a trial has checkpointed; --resume restores the Tune studies."""
    env = {**os.environ, "RAY_ADDRESS": ""}
    # also_students: a second student encoder trained on the same pools and real data
    cmd = _cmd(tmp_path, "--config", TINY, "--set", f"run.root={tmp_path}/runs", "--set", "gold.iterations=3",
               "--set", "also_students=[tiny-llama]")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 400
    try:
        while time.time() < deadline and not list((tmp_path / "runs").rglob("tune/gold/*/checkpoint_*/state.json")):
            time.sleep(1)
            assert proc.poll() is None, "the job ended before any checkpoint"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
        proc.wait()
    (run,) = (tmp_path / "runs" / "gold").iterdir()
    assert not (run / "summary.md").exists()
    done = subprocess.run(_cmd(tmp_path, "--resume", str(run)), cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["model"] for r in rows} >= {"teacher_zero_shot", "gold", "zerogen", "real_data",
                                         "gold@tiny-llama", "zerogen@tiny-llama", "real_data@tiny-llama"}
    assert "gold student (tiny-llama)" in (run / "summary.md").read_text()
    gen = [json.loads(x) for x in (run / "generated.jsonl").read_text().splitlines()]
    assert {g["arm"] for g in gen} == {"gold", "zerogen"}
    # each GOLD trial reached the last iteration across the kill (ASHA may stop one early)
    results = [json.loads(p.read_text()) for p in (run / "tune" / "gold").glob("*/checkpoint_*/state.json")]
    assert max(r["iteration"] for r in results) == 3
    # GOLD and ZeroGen ran the same number of Tune trials
    trials = {arm: [p for p in (run / "tune" / arm).iterdir() if p.is_dir() and p.name.startswith("gold_trial")]
              for arm in ("gold", "zerogen")}
    assert len(trials["gold"]) == len(trials["zerogen"]) == 2
    # the final GOLD student learnt the pool of a trial that ran all 3 iterations (the same budget as ZeroGen)
    gold_pool = sorted(g["text"] for g in gen if g["arm"] == "gold")
    assert gold_pool in [sorted(s["text"] for s in r["pool"]) for r in results if r["iteration"] == 3]
    assert (run / "accuracy_vs_iteration.png").is_file() and (run / "summary.md").is_file()

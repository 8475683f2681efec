"""The multilabel job as a user runs it: bad input exits 2 naming the field before Ray starts; the
tiny config runs every method end to end; a study killed mid-way resumes from its checkpoints."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[2]
TINY = "configs/multilabel/tiny.yaml"


def _run(tmp_path, *args, timeout=600):
    cmd = [sys.executable, "-m", "ray_jobs.multilabel", *args]
    env = {**os.environ, "RAY_ADDRESS": "", "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("override,message", [
    ("meta.rewards=[f1]", "'meta.rewards[0]'"),
    ("meta.order=hierarchy", "'meta.order'"),
    ("data.name=nowhere.jsonl", "'data.name'"),
    ("baselines.methods=[bce]", "'baselines.methods[0]'"),
    ("seeds=[]", "'seeds'"),
    ("classifier.epochs=0", "'classifier.epochs'"),
])
def test_bad_config_exits_2_naming_the_field(tmp_path, override, message):
    proc = _run(tmp_path, "--config", TINY, "--set", f"run.root={tmp_path}/runs", "--set", override)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_bad_jsonl_exits_2_naming_the_line(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "a", "labels": ["x"]}) + "\n" + json.dumps({"text": "b", "labels": "x"}) + "\n")
    proc = _run(tmp_path, "--config", TINY, "--set", f"run.root={tmp_path}/runs", "--set", f"data.name={data}")
    assert proc.returncode == 2
    assert "'data.labels_field'" in proc.stderr and "line 2" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_dry_run_prints_the_plan(tmp_path):
    proc = _run(tmp_path, "--config", TINY, "--dry-run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "4 Ray Tune trials" in proc.stdout or "Ray Tune trials" in proc.stdout
    assert "meta:macro_f1_gain" in proc.stdout




@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_tiny_job_end_to_end(tmp_path):
    proc = _run(tmp_path, "--config", TINY, "--set", f"run.root={tmp_path}/runs")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "runs" / "multilabel").iterdir()
    for name in ("summary.md", "policy.png", "results.json", "metrics.jsonl", "config.yaml"):
        assert (run / name).is_file(), name
    res = json.loads((run / "results.json").read_text())
    n_labels = len(res["label_names"])
    methods = {(m, t["seed"]) for t in res["trials"] for m in t["methods"]}
    expected = {"bce_0.5", "global_threshold", "per_label_thresholds", "pos_weight", "focal", "meta:macro_f1_gain"}
    assert methods == {(m, s) for m in expected for s in (0, 1)}
    for t in res["trials"]:
        for m, r in t["methods"].items():
            assert 0.0 <= r["micro_f1"] <= 1.0 and 0.0 <= r["macro_f1"] <= 1.0
            assert len(r["thresholds"]) == n_labels
        if "history" in t:
            assert [h["episode"] for h in t["history"]] == [0, 1, 2]
            w = t["methods"]["meta:macro_f1_gain"]["weights"]
            # three REINFORCE steps moved the policy away from its start (w = 1, tau = 0.5)
            assert len(w) == n_labels and max(abs(x - 1.0) for x in w) > 1e-4
    summary = (run / "summary.md").read_text()
    assert "BCE + 0.5" in summary and "Paired over seeds" in summary and "## Targets" in summary


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_a_killed_study_resumes(tmp_path):
    """SIGKILL the driver once a meta trial has checkpointed an episode; --resume restores the study
    and every meta trial ends with all its episodes, counted once."""
    env = {**os.environ, "RAY_ADDRESS": "", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "ray_jobs.multilabel", "--config", TINY, "--set", f"run.root={tmp_path}/runs",
           "--set", "meta.episodes=6", "--set", "seeds=[0]"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 500
    try:
        while time.time() < deadline and not list((tmp_path / "runs").rglob("tune/study/*/checkpoint_*/meta_state.pt")):
            time.sleep(0.5)
            assert proc.poll() is None, "the job ended before any checkpoint"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    (run,) = (tmp_path / "runs" / "multilabel").iterdir()
    assert not (run / "summary.md").exists()
    done = subprocess.run([sys.executable, "-m", "ray_jobs.multilabel", "--resume", str(run)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    res = json.loads((run / "results.json").read_text())
    (meta,) = [t for t in res["trials"] if t["arm"].startswith("meta:")]
    assert [h["episode"] for h in meta["history"]] == list(range(6))


@pytest.mark.parametrize("name", ["tiny", "laptop", "figer", "cluster"])
def test_every_config_loads_and_plans(name):
    from core.config import ConfigError, load
    from multilabel.config import MultilabelJobConfig
    from ray_jobs import plans

    cfg = load(MultilabelJobConfig, REPO / "configs" / "multilabel" / f"{name}.yaml")
    lines = plans.plan_multilabel(cfg, {"CPU": 96.0, "GPU": 8.0})
    assert any("Ray Tune trials" in line for line in lines)
    if name == "cluster":
        assert any("0.25 GPU" in line for line in lines), lines
        with pytest.raises(ConfigError) as err:  # a laptop without a GPU cannot run it
            plans.plan_multilabel(cfg, {"CPU": 2.0, "GPU": 0.0})
        assert err.value.key == "tune.gpus_per_trial"

"""ray_jobs.specialize end to end: bad recipes exit 2 before Ray starts; the tiny recipe runs,
reruns as skips; a driver killed mid-stage resumes to the same artifacts as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from ray_jobs.specialize import main
from tests.specialize.conftest import MINI

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs/specialize/tiny.yaml"


def write_recipe(tmp_path: Path, d: dict, name: str = "recipe.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(d))
    return p


def test_bad_recipe_exits_2_naming_stage_and_field(tmp_path, capsys):
    d = json.loads(json.dumps(MINI))
    d["stages"][2]["inputs"] = {"domain": "student"}
    assert main(["--config", str(write_recipe(tmp_path, d)), "--set", f"run.root={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "stages.ppl.inputs.domain" in err and "type mismatch" in err
    assert not (tmp_path / "specialize").exists()  # nothing ran, no run directory


def test_unknown_from_stage_exits_2(tmp_path, capsys):
    assert main(["--config", str(write_recipe(tmp_path, MINI)), "--from", "nope", "--set", f"run.root={tmp_path}"]) == 2
    assert "--from" in capsys.readouterr().err


def test_resources_the_cluster_lacks_exit_2(tmp_path, capsys):
    d = yaml.safe_load(TINY.read_text())
    next(s for s in d["stages"] if s["name"] == "spry")["config"]["resources"]["num_gpus"] = 64
    assert main(["--config", str(write_recipe(tmp_path, d)), "--set", f"run.root={tmp_path}"]) == 2
    assert "stages.spry.config.resources.num_gpus" in capsys.readouterr().err


def test_dry_run_prints_every_stage(capsys):
    assert main(["--config", str(TINY), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for stage in ("curate", "gold", "spry", "refusion", "compress", "eval_compressed"):
        assert f"stage {stage} (" in out
    assert "can run at once" in out




@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_tiny_recipe_end_to_end_then_every_stage_skipped(ray_session, tmp_path, capsys):
    assert main(["--config", str(TINY), "--set", f"run.root={tmp_path}"]) == 0
    (run,) = list((tmp_path / "specialize").iterdir())
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"]: r["status"] for r in records} == {s: "ran" for s in
                                                         ("curate", "gold", "spry", "refusion", "compress", "eval_compressed")}
    by = {r["stage"]: r for r in records}
    for s in ("curate", "gold", "spry", "refusion"):
        assert 0.0 <= by[s]["test_accuracy"] <= 1.0
    assert by["spry"]["tensors_from_init"] > 0  # Spry started from GOLD's student
    assert by["curate"]["by_source"].keys() == {"task:rotten_tomatoes", "tweets"}
    assert by["eval_compressed"]["domain_ppl"] == pytest.approx(by["compress"]["domain_ppl"], rel=1e-6)
    assert any(k.startswith("halueval_qa/halueval/") for k in by["eval_compressed"])
    summary = (run / "summary.md").read_text()
    assert summary.count("| ran |") == 6 and (run / "metrics.png").is_file()
    # a second run under the same root reuses every artifact
    assert main(["--config", str(TINY), "--set", f"run.root={tmp_path}"]) == 0
    (second,) = [p for p in (tmp_path / "specialize").iterdir() if p != run]
    again = [json.loads(x) for x in (second / "metrics.jsonl").read_text().splitlines()]
    assert {r["status"] for r in again} == {"skipped"}
    assert {r["stage"]: r["key"] for r in again} == {r["stage"]: r["key"] for r in records}


def _snapshot(run: Path) -> dict:
    """Per artifact folder name: its dataset rows, its weights and its report (what must match)."""
    out = {}
    for art in sorted((run / "artifacts").iterdir()):
        if art.name.startswith("."):
            continue
        for f in sorted(art.rglob("*")):
            rel = f"{art.name}/{f.relative_to(art)}"
            if f.name == "weights.pt":
                out[rel] = {k: v.tolist() for k, v in torch.load(f).items()}
            elif f.name in ("data.jsonl", "report.json", "model.json", "dataset.json"):
                out[rel] = f.read_text()
    return out


@pytest.mark.slow
def test_killing_the_driver_mid_stage_then_resuming_gives_the_same_artifacts(tmp_path):
    d = json.loads(json.dumps(MINI))
    d["stages"][1]["config"]["epochs"] = 3  # a stage long enough to be killed in
    d["ray_num_cpus"] = 1
    recipe = write_recipe(tmp_path, d)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "ray_jobs.specialize", "--config", str(recipe)]

    # killed: once the student stage has started writing its artifact
    proc = subprocess.Popen([*cmd, "--set", f"run.root={tmp_path / 'killed'}"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    killed_mid_stage = False
    try:
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            arts = list((tmp_path / "killed").glob("specialize/*/artifacts/.student-*.tmp-*"))
            if arts:
                time.sleep(0.5)
                killed_mid_stage = proc.poll() is None and bool(list(arts[0].parent.glob(".student-*.tmp-*")))
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
        proc.wait()
    assert killed_mid_stage, "the run finished the stage before it could be killed"
    (run,) = list((tmp_path / "killed" / "specialize").iterdir())
    done = {p.name.split("-")[0] for p in (run / "artifacts").iterdir() if not p.name.startswith(".")}
    assert "student" not in done  # the half-written stage left no artifact

    resumed = subprocess.run([*cmd[:3], "--resume", str(run)], env=env, cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    statuses = {json.loads(x)["stage"]: json.loads(x)["status"] for x in (run / "metrics.jsonl").read_text().splitlines()}
    assert statuses["student"] == "ran" and statuses["ppl"] in ("ran", "skipped")

    clean = subprocess.run([*cmd, "--set", f"run.root={tmp_path / 'clean'}"], env=env, cwd=REPO,
                           capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr[-2000:]
    (other,) = list((tmp_path / "clean" / "specialize").iterdir())
    a, b = _snapshot(run), _snapshot(other)
    assert a.keys() == b.keys() and len(a) == 5  # raw: 2 files, student: 2, ppl: 1
    assert a == b

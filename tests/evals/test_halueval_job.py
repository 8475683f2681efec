"""The halueval job: bad input exits 2 before Ray starts, naming the field; a tiny random LM on 2 Ray
actors plus the scripted judges writes the leaderboard, plot and raw answers; --resume skips every
answered item."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import RAY

REPO = Path(__file__).resolve().parents[2]
TINY = "configs/halueval/tiny.yaml"


def _run(*args, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "ray_jobs.halueval", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("override,message", [
    ("datasets=[{name: truthfulqa}]", "unknown dataset 'truthfulqa'"),
    ("datasets=[{name: uhgeval, evaluators: [bleu]}]", "'datasets[0].evaluators[0]'"),
    ("keywords=gpt4", "'keywords'"),
    ("chunk_items=0", "'chunk_items': must be >= 1"),
])
def test_bad_input_exits_2_naming_the_field(tmp_path, override, message):
    proc = _run("--config", TINY, "--set", f"run.root={tmp_path}/runs", "--set", override)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_bad_dataset_line_exits_2_naming_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "right_answer": "r", "hallucinated_answer": "h"}) + "\n"
                   + json.dumps({"question": "q", "hallucinated_answer": "h"}) + "\n")
    proc = _run("--config", TINY, "--set", f"run.root={tmp_path}/runs", "--set",
                f"datasets=[{{name: {bad}, evaluators: [halueval]}}]")
    assert proc.returncode == 2 and f"line 2 of {bad}" in proc.stderr and "'right_answer'" in proc.stderr


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_tiny_run_on_the_actor_pool_then_resume(tmp_path):
    cfg = yaml.safe_load((REPO / TINY).read_text())
    cfg["models"] = [m for m in cfg["models"] if m["name"] in ("oracle", "tiny-llama")]
    cfg["datasets"] = [{"name": "uhgeval_slice", "items": 2, "evaluators": ["disc_sentence", "selective"]},
                       {"name": "halueval_qa", "items": 2, "evaluators": ["halueval"]}]
    cfg["run"] = {"root": str(tmp_path / "runs")}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = _run("--config", str(path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = list((tmp_path / "runs" / "halueval").iterdir())
    rows = json.loads((run / "leaderboard.json").read_text())
    oracle = [r for r in rows if r["model"] == "oracle"]
    assert oracle and all(r["score"] == 1.0 for r in oracle)
    tiny = {(r["evaluator"], r["by"]): r for r in rows if r["model"] == "tiny-llama"}
    assert set(tiny) == {(e, b) for e in ("disc_sentence", "selective", "halueval") for b in ("text", "likelihood")}
    assert all(r["errors"] == 0 and r["items"] == 2 for r in tiny.values())
    assert tiny[("halueval", "likelihood")]["invalid_share"] == 0.0
    answers = [json.loads(x) for x in (run / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 2 * 2 * 3  # 2 models x 3 evaluators x 2 items
    assert (run / "leaderboard.png").stat().st_size > 1000
    summary = (run / "summary.md").read_text()
    assert "oracle (test instrument)" in summary and "| tiny-llama |" in summary
    served = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["answered"] for r in served) == 12

    proc = _run("--resume", str(run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][len(served):]
    assert sum(r["answered"] for r in again) == 0 and sum(r["skipped"] for r in again) == 12
    assert "already answered" in (run / "summary.md").read_text()

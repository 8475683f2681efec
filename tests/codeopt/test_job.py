"""The SOAP job as a user runs it: bad input exits 2 naming the field before Ray starts; the plan;
sandboxed executions as Ray tasks; a tiny end-to-end run whose --resume reuses every cached step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import ConfigError, load
from codeopt.config import SoapJobConfig
from codeopt.sandbox import ProfileSpec, SandboxConfig, probe_namespaces
from ray_jobs import plans
from tests.conftest import RAY, load_shipped

REPO = Path(__file__).resolve().parents[2]
TINY = "configs/soap/tiny.yaml"


def _run(tmp_path, *args, timeout=900):
    env = {**os.environ, "RAY_ADDRESS": "", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "ray_jobs.soap", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.parametrize("override,message", [
    ("sandbox.isolation=none", "'sandbox.accept_weaker_isolation'"),
    ("sandbox.isolation=rlimits", "'sandbox.accept_weaker_isolation'"),
    ("loop.feedback=[fast]", "'loop.feedback'"),
    ("loop.iterations=-1", "'loop.iterations'"),
    ("profile.runs=1", "'profile.runs'"),
    ("data=[{source: jsonl, path: /nonexistent.jsonl}]", "file not found: /nonexistent.jsonl"),
    ("data=[{source: mbpp, split: train}]", "'data[0].split'"),
])
def test_bad_input_exits_2_naming_the_field(tmp_path, capsys, override, message):
    from ray_jobs.soap import main

    assert main(["--config", str(REPO / TINY), "--set", f"run.root={tmp_path}/runs", "--set", override]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_bad_input_from_the_command_line():
    proc = _run(None, "--config", TINY, "--set", "sandbox.isolation=none", timeout=300)
    assert proc.returncode == 2 and "'sandbox.accept_weaker_isolation'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_plans():
    cluster = load_shipped(SoapJobConfig, REPO / "configs/soap/cluster.yaml")
    lines = plans.plan_soap(cluster, {"CPU": 96.0, "GPU": 8.0})
    assert any("LLM actors" in x and "1 GPU" in x for x in lines) and any("32 in flight" in x for x in lines)
    with pytest.raises(ConfigError, match="num_gpus"):
        plans.plan_soap(cluster, {"CPU": 2.0, "GPU": 0.0})
    assert plans.plan_soap(load(SoapJobConfig, REPO / TINY), {"CPU": 2.0, "GPU": 0.0})


@pytest.mark.skipif(probe_namespaces() is not None, reason="no namespaces here")
@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_sandboxed_executions_run_as_ray_tasks(ray_session):
    from codeopt.execute import RayExecutor

    ex = RayExecutor(SandboxConfig(timeout_s=20), ProfileSpec(line_profile=False, min_time_s=0.001), concurrency=2,
                     num_cpus=0.5)
    out = ex([("def f():\n    return 1\n", "assert f() == 1\n"), ("while True:\n    pass\n", "pass"),
              ("def f(:\n", "pass")])
    assert [r.status for r in out][0] == "passed" and out[0].profile["et_s"] > 0
    assert out[1].status in ("timeout", "cpu_limit") and out[2].status == "syntax_error"


@pytest.mark.slow
@pytest.mark.skipif(probe_namespaces() is not None, reason="no namespaces here")
def test_tiny_run_writes_its_report_and_resume_reuses_the_cache(tmp_path):
    first = _run(tmp_path, "--config", TINY, "--set", f"run.root={tmp_path}/runs")
    assert first.returncode == 0, first.stderr[-3000:]
    (run,) = (tmp_path / "runs" / "soap").iterdir()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert {(r["arm"], r["feedback"], r["iteration"]) for r in rows} == {
        (a, f, i) for a in ("humaneval", "humaneval-slow-start") for f in ("full", "none") for i in (0, 1)}
    slow0 = next(r for r in rows if r["arm"] == "humaneval-slow-start" and r["iteration"] == 0)
    assert slow0["pass@1"] == 1.0 and slow0["NET"] > 1.0  # the slow rewrites are correct and slower
    summary = (run / "summary.md").read_text()
    assert "excluded 0" in summary and (run / "overhead_humaneval-slow-start.png").is_file()
    cached = {p: p.stat().st_mtime_ns for p in (run / "cache").rglob("*.json")}
    assert any("iter1" in p.name for p in cached)
    again = _run(tmp_path, "--resume", str(run))
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in (run / "cache").rglob("*.json")} == cached  # nothing recomputed
    assert [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()] == rows

"""The SOAP loop with a real sandbox and a scripted backend (a test instrument): it improves a
deliberately slow solution only when the profile reaches the prompt, rejects failing rewrites, keeps
passing-and-faster ones, and a rerun reuses every cached iteration."""

from __future__ import annotations

import pytest

from core.llm import SamplingParams
from codeopt.execute import LocalExecutor
from codeopt.loop import LoopConfig, SoapCache, run_soap
from codeopt.sandbox import ProfileSpec, SandboxConfig, probe_namespaces
from codeopt.tasks import Task
from tests.codeopt.scripted import Refuses, ScriptedBackend

pytestmark = pytest.mark.skipif(probe_namespaces() is not None, reason="no namespaces here")

SLOW = "def total(n):\n    s = 0\n    for i in range(n):\n        s = s + i\n    return s\n"
FAST = "def total(n):\n    return n * (n - 1) // 2\n"
WRONG = "def total(n):\n    return n * n\n"
TASK = Task("toy/1", "Return the sum of 0..n-1.", "total", "assert total(100000) == 4999950000\n",
            FAST, "assert total(3) == 3", "toy")
NO_TESTS = Task("toy/2", "Nothing to check.", "f", "x = 1\n", "def f():\n    return 1\n", "", "toy")
BROKEN = Task("toy/3", "Canonical fails.", "g", "assert g() == 2\n", "def g():\n    return 1\n", "", "toy")


def _script():
    calls = {"k": 0}

    def with_profile(text):
        calls["k"] += 1
        assert "total(100000)" in text or "s = s + i" in text
        code = WRONG if calls["k"] == 1 else FAST  # a failing rewrite first, then the fast one
        return f"Here you go:\n```python\n{code}```\n"

    return ScriptedBackend(with_profile, lambda text: f"```python\n{SLOW}```")


def _generate(backend):
    return lambda prompts, seeds: backend.generate(prompts, SamplingParams(max_new_tokens=64), seeds)


SBX = SandboxConfig(timeout_s=20)
PROF = ProfileSpec(runs=3, min_time_s=0.02, line_profile=True)


def test_loop_improves_a_slow_solution_only_with_the_profile_and_resumes_from_cache(tmp_path):
    cfg = LoopConfig(iterations=2, feedback=["full", "none"], starts=["slow"], min_rel_gain=0.1)
    backend = _script()
    ex = LocalExecutor(SBX, PROF, concurrency=2)
    res = run_soap([TASK, NO_TESTS, BROKEN], cfg, _generate(backend), ex, SoapCache(tmp_path / "cache"),
                   slow=lambda t: SLOW)
    assert res.excluded.no_tests == ["toy/2"] and [t for t, _ in res.excluded.canonical_fails] == ["toy/3"]
    full = res.lanes[("slow", "full")][0]
    plain = res.lanes[("slow", "none")][0]
    assert [h["kept"] for h in full.history] == [False, True]  # the wrong rewrite is rejected, the fast kept
    assert full.history[0]["new_status"] == "failed"
    assert full.current.code == FAST
    assert [h["kept"] for h in plain.history] == [False, False]  # the same slow code is not faster
    assert plain.current.code == SLOW
    curve = {(r["feedback"], r["iteration"]): r for r in res.curves}
    start_net = curve[("full", 0)]["NET"]
    assert start_net > 5  # the slow loop against the closed form
    assert curve[("full", 2)]["NET"] < 0.3 * start_net and curve[("full", 2)]["NTMU"] < curve[("full", 0)]["NTMU"]
    assert curve[("none", 2)]["NET"] > 0.5 * start_net
    assert all(r["pass@1"] == 1.0 for r in res.curves)
    # the profile reached the prompt: its numbers and the hot line
    prof_prompt = next(p for p in backend.prompts if "Line-level time profile" in p)
    assert "Execution time (ET)" in prof_prompt and "s = s + i" in prof_prompt.split("Line-level time profile")[1]

    # a rerun over the same cache asks the model nothing and executes nothing, with the same outcome
    ex2 = LocalExecutor(SBX, PROF)
    again = run_soap([TASK, NO_TESTS, BROKEN], cfg, _generate(Refuses()), ex2, SoapCache(tmp_path / "cache"),
                     slow=lambda t: SLOW)
    assert ex2.calls == 0
    assert again.curves == res.curves


def test_generated_start_fixes_failing_code_then_keeps_only_faster(tmp_path):
    backend = ScriptedBackend(lambda t: f"```python\n{FAST}```", lambda t: f"```python\n{FAST}```",
                              generate_first=lambda t: f"```python\n{WRONG}```")
    cfg = LoopConfig(iterations=1, feedback=["summary"], starts=["generated"])
    res = run_soap([TASK], cfg, _generate(backend), LocalExecutor(SBX, PROF), SoapCache(tmp_path / "c"))
    lane = res.lanes[("generated", "summary")][0]
    assert lane.history[0]["kept"] and lane.current.code == FAST
    curve = {r["iteration"]: r for r in res.curves}
    assert curve[0]["pass@1"] == 0.0 and curve[1]["pass@1"] == 1.0
    assert "fails its tests" in backend.prompts[-1]  # a failing version is fed its error, not a profile

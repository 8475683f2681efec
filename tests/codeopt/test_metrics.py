"""EffiBench's formulas: on programs of known cost (a sleep, an allocation of known size) and on
hand-computed totals."""

from __future__ import annotations

import math

import pytest

from codeopt.harness import trapezoid
from codeopt.loop import Candidate, accept
from codeopt.metrics import Overhead, faster_beyond_noise, median, normalized, pass_at_1, relative_spread
from codeopt.sandbox import ProfileSpec, SandboxConfig, probe_namespaces, run_code

needs_ns = pytest.mark.skipif(probe_namespaces() is not None, reason="no namespaces here")


def test_normalized_is_a_ratio_of_totals_over_tasks_where_both_ran():
    a, b = Overhead(2.0, 10.0, 20.0), Overhead(1.0, 10.0, 10.0)
    c, d = Overhead(1.0, 30.0, 3.0), Overhead(3.0, 10.0, 30.0)
    out = normalized([(a, b), (c, d), (None, d), (a, None)])
    assert out["tasks"] == 2
    assert out["NET"] == pytest.approx(3.0 / 4.0)  # not the mean of 2.0 and 1/3
    assert out["NMU"] == pytest.approx(40.0 / 20.0) and out["NTMU"] == pytest.approx(23.0 / 40.0)
    assert math.isnan(normalized([(None, a)])["NET"])
    assert pass_at_1([True, False, False, True]) == 0.5


def test_median_spread_and_trapezoid():
    assert median([3, 1, 2]) == 2 and median([4, 1, 2, 3]) == 2.5
    assert relative_spread([0.9, 1.0, 1.1]) == pytest.approx(0.2)
    # 10 MB for 1 s then a linear ramp to 30 MB over 1 s: 10 + 20 = 30 MB*s
    assert trapezoid([(0.0, 10.0), (1.0, 10.0), (2.0, 30.0)]) == pytest.approx(30.0)


def test_keep_rule_takes_only_passing_and_faster_beyond_the_noise():
    prof = lambda et, runs: {"et_s": et, "mu_mb": 20.0, "tmu_mbs": et * 20, "et_runs": runs}  # noqa: E731
    cur = Candidate("a", "passed", profile=prof(1.0, [0.95, 1.0, 1.05]))  # 10% spread
    assert not accept(cur, Candidate("b", "failed", "AssertionError"), 0.05)[0]
    assert not accept(cur, Candidate("b", "timeout"), 0.05)[0]
    assert not accept(cur, Candidate("b", "passed", profile=prof(0.93, [0.92, 0.93, 0.94])), 0.05)[0]  # within noise
    assert accept(cur, Candidate("b", "passed", profile=prof(0.5, [0.49, 0.5, 0.51])), 0.05)[0]
    assert not accept(cur, Candidate("b", "passed", profile=prof(1.5, [1.5, 1.5, 1.5])), 0.05)[0]  # slower
    # the same program, timed faster by luck on busy cores, is not a rewrite
    same = Candidate("a  \n\n", "passed", profile=prof(0.5, [0.5, 0.5, 0.5]))
    assert accept(cur, same, 0.05) == (False, "unchanged code")
    failing = Candidate("a", "failed", "boom")
    assert accept(failing, Candidate("b", "passed", profile=prof(3.0, [3, 3, 3])), 0.05)[0]
    assert faster_beyond_noise(Overhead(1.0, 1, 1, 0.0), Overhead(0.8, 1, 1, 0.0), 0.1)
    assert not faster_beyond_noise(Overhead(1.0, 1, 1, 0.3), Overhead(0.8, 1, 1, 0.0), 0.1)


@needs_ns
def test_profile_of_a_sleep_and_of_a_known_allocation():
    wall = ProfileSpec(runs=3, min_time_s=0.0, clock="wall", sample_interval_s=0.002, line_profile=False)
    sleep = run_code("import time\ndef f():\n    time.sleep(0.15)\n", "f()\n", SandboxConfig(), wall)
    p = sleep.profile
    assert sleep.passed and p["loops"] == 1
    assert 0.15 <= p["et_s"] < 0.6  # a sleep's wall time; a loaded machine only adds
    # TMU of a sleep is its resident memory held for 0.15 s
    assert p["tmu_mbs"] == pytest.approx(p["mu_mb"] * p["et_s"], rel=0.1)
    cpu = run_code("import time\ndef f():\n    time.sleep(0.15)\n", "f()\n", SandboxConfig(),
                   ProfileSpec(runs=3, min_time_s=0.0, line_profile=False))
    assert cpu.profile["et_s"] < 0.05  # sleeping costs no CPU time

    alloc = ("import time\ndef f():\n    block = bytearray(96 * 2**20)\n    block[::4096] = b'x' * len(block[::4096])\n"
             "    time.sleep(0.1)\n    return len(block)\n")
    r = run_code(alloc, "assert f() == 96 * 2**20\n", SandboxConfig(), wall)
    p = r.profile
    assert r.passed
    assert 90 <= p["mu_mb"] - p["base_mb"] <= 110  # 96 MiB touched on top of the interpreter
    assert p["tmu_mbs"] >= 0.1 * 90  # at least 96 MiB held for 0.1 s
    assert "lines" not in p  # line profiling was off here
    lines = run_code(alloc, "assert f() == 96 * 2**20\n", SandboxConfig(),
                     ProfileSpec(runs=3, min_time_s=0.0, line_profile=True)).profile["lines"]
    assert lines["memory"][0]["code"].startswith("block = bytearray") and lines["memory"][0]["mem_mib"] == pytest.approx(96, abs=1)

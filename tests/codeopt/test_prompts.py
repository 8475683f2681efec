"""SOAP's prompts carry the profile (the reference blanked it), each ablation carries its part only,
and code comes out of replies in the shapes small models write."""

from __future__ import annotations

from codeopt.prompts import extract_code, generation_prompt, overhead_analysis, refinement_prompt
from codeopt.tasks import Task

TASK = Task("HumanEval/0", 'def add(a, b):\n    """Add."""\n', "add", "assert add(1, 2) == 3\n",
            'def add(a, b):\n    """Add."""\n    return a + b\n', "assert add(1, 2) == 3", "humaneval")
PROFILE = {"et_s": 0.0123, "mu_mb": 21.5, "tmu_mbs": 0.26, "et_runs": [0.012, 0.0123, 0.013],
           "lines": {"time": [{"line": 3, "hits": 1000, "time_s": 0.01, "time_pct": 81.3, "mem_mib": 0.0,
                               "code": "total = total + x"}],
                     "memory": [{"line": 2, "hits": 1, "time_s": 0.001, "time_pct": 8.0, "mem_mib": 7.5,
                                 "code": "xs = list(range(10**6))"}]}}


def test_refinement_prompt_includes_the_profile():
    text = refinement_prompt(TASK, TASK.canonical, PROFILE, "full")[-1]["content"]
    assert "12.3000 ms" in text and "21.50 MB" in text and "260.0000 MB*ms" in text
    assert "total = total + x" in text and "81.3" in text and "xs = list(range(10**6))" in text and "7.5000" in text
    assert "return a + b" in text and "assert add(1, 2) == 3" in text


def test_each_ablation_carries_only_its_part():
    summary = overhead_analysis(PROFILE, "summary")
    assert "Execution time (ET)" in summary and "total = total + x" not in summary and "xs = list" not in summary
    time_only = overhead_analysis(PROFILE, "time")
    assert "total = total + x" in time_only and "xs = list" not in time_only
    mem_only = overhead_analysis(PROFILE, "memory")
    assert "xs = list" in mem_only and "total = total + x" not in mem_only
    plain = refinement_prompt(TASK, TASK.canonical, PROFILE, "none")[-1]["content"]
    assert "Execution time" not in plain and "Optimise the code" in plain


def test_failing_code_gets_its_error_instead_of_a_profile():
    text = refinement_prompt(TASK, "def add(a, b):\n    return a - b\n", None, "full", error="AssertionError")[-1]["content"]
    assert "fails its tests: AssertionError" in text and "Execution time" not in text


def test_extract_code_from_replies():
    fenced = "Sure!\n```python\ndef add(a, b):\n    return a + b\n```\nThis is fast."
    assert extract_code(fenced, TASK) == "def add(a, b):\n    return a + b\n"
    two = "```python\nimport math\n```\n```python\ndef add(a, b):\n    return b + a\n```"
    assert "return b + a" in extract_code(two, TASK)
    body = "    return a + b\n"  # a bare completion of HumanEval's prompt
    assert extract_code(body, TASK) == TASK.prompt + "    return a + b\n"
    unterminated = "```python\ndef add(a, b):\n    return a + b\n"
    assert "return a + b" in extract_code(unterminated, TASK)
    gen = generation_prompt(TASK)[-1]["content"]
    assert TASK.prompt.strip() in gen and "assert add(1, 2) == 3" in gen

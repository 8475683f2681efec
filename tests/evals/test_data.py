"""Datasets and config: bad lines name file, line and field; unknown names list the allowed ones."""

import json

import pytest

from core.config import ConfigError, from_dict
from evals.config import HaluEvalJobConfig
from evals.data import load_items, read_jsonl


def test_packaged_and_shared_datasets_load():
    u = load_items("uhgeval", 5, 0)
    assert len(u) == 5 and u[0].schema == "uhgeval" and u[0].language == "zh" and u[0].type in ("doc", "gen", "kno", "num")
    s = load_items("uhgeval_slice")
    assert len(s) == 200
    for task in ("qa", "dialogue", "summarization"):
        h = load_items(f"halueval_{task}", 3, 0)
        assert h[0].schema == f"halueval_{task}" and h[0].type == task and h[0].language == "en"
    assert load_items("halueval_qa", 3, 0) == load_items("halueval_qa", 3, 0)  # seeded
    # a larger sample keeps the smaller one's items, so a cached run can grow
    small, large = ({it.id for it in load_items("uhgeval", n, 0)} for n in (50, 200))
    assert small < large and {it.id for it in load_items("uhgeval", 50, 1)} != small


def test_any_jsonl_in_either_schema(tmp_path):
    p = tmp_path / "mine.jsonl"
    p.write_text(json.dumps({"question": "q?", "right_answer": "r", "hallucinated_answer": "h"}) + "\n\n"
                 + json.dumps({"question": "q2?", "right_answer": "r2", "hallucinated_answer": "h2"}) + "\n")
    items = load_items(str(p))
    assert [it.id for it in items] == ["1", "3"] and items[0].schema == "halueval_qa"


def test_missing_field_names_file_line_and_field(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"question": "q?", "right_answer": "r", "hallucinated_answer": "h"}) + "\n"
                 + json.dumps({"question": "q2?", "right_answer": "r2"}) + "\n")
    with pytest.raises(ConfigError) as err:
        read_jsonl(p)
    msg = str(err.value)
    assert "line 2" in msg and str(p) in msg and "'hallucinated_answer'" in msg


def test_not_json_and_no_schema(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text("{not json\n")
    with pytest.raises(ConfigError, match="line 1 of .* is not valid JSON"):
        read_jsonl(p)
    p.write_text(json.dumps({"text": "hello"}) + "\n")
    with pytest.raises(ConfigError, match="matches no schema"):
        read_jsonl(p)


def test_bad_uhgeval_annotations(tmp_path):
    row = dict(load_items("uhgeval_slice")[0].fields)
    row["annotations"] = ["no separator"]
    p = tmp_path / "u.jsonl"
    p.write_text(json.dumps(row, ensure_ascii=False) + "\n")
    with pytest.raises(ConfigError, match="annotations"):
        read_jsonl(p)


def test_unknown_dataset_lists_the_allowed():
    with pytest.raises(ConfigError) as err:
        load_items("truthfulqa")
    assert "halueval_qa" in str(err.value) and "uhgeval" in str(err.value)


def test_unknown_evaluator_lists_the_allowed():
    with pytest.raises(ConfigError) as err:
        from_dict(HaluEvalJobConfig, {"datasets": [{"name": "uhgeval", "evaluators": ["bertscore"]}]})
    assert err.value.key == "datasets[0].evaluators[0]" and "disc_keyword" in str(err.value)


def test_evaluator_that_does_not_apply_to_the_dataset():
    with pytest.raises(ConfigError) as err:
        from_dict(HaluEvalJobConfig, {"datasets": [{"name": "halueval_qa", "evaluators": ["selective"]}]})
    assert "allowed: halueval" in str(err.value)


def test_unknown_model_and_duplicate_names():
    with pytest.raises(ConfigError, match=r"models\[0\].llm.hf.model.name"):
        from_dict(HaluEvalJobConfig, {"models": [{"name": "x", "llm": {"hf": {"model": {"name": "no such model"}}}}]})
    with pytest.raises(ConfigError, match="used twice"):
        from_dict(HaluEvalJobConfig, {"models": [{"name": "a", "judge": "oracle"}, {"name": "a", "judge": "random"}]})
    with pytest.raises(ConfigError, match="allowed values"):
        from_dict(HaluEvalJobConfig, {"models": [{"name": "a", "judge": "genius"}]})

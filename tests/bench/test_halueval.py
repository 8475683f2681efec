"""bench.halueval's length split: the scripted judges on real HaluEval QA items land where they must."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.halueval import compression_pairs, length_split, main, section_name
from evals.cache import AnswerCache
from evals.data import load_items
from evals.evaluators import build_evaluator
from evals.judges import ScriptedJudge
from evals.runner import run_evaluator


def test_length_split_of_the_scripted_judges(tmp_path):
    # hallucinated answers are the longer ones about 96% of the time: 100 items hold both groups
    items = load_items("halueval_qa", 100, 0)
    news = load_items("uhgeval_slice", 40, 0)
    cache = AnswerCache(tmp_path)
    for kind in ("oracle", "constant"):
        run_evaluator(build_evaluator("halueval"), items, ScriptedJudge(kind), cache, "halueval_qa", seed=0)
        run_evaluator(build_evaluator("disc_sentence"), news, ScriptedJudge(kind), cache, "uhgeval_slice", seed=0)
    longer = sum(len(it.fields["hallucinated_answer"]) > len(it.fields["right_answer"]) for it in items)
    split = length_split(cache.all_records(), {"seed": 0, "datasets": [
        {"name": "halueval_qa", "items": 100}, {"name": "uhgeval_slice", "items": 40}]})
    rows = {r[2]: r for r in split if r[0] == "halueval_qa"}
    assert set(rows) == {"oracle", "constant"} and all(r[1] == "halueval" for r in rows.values())
    assert rows["oracle"][3] == f"{longer} of 100" and 0 < longer < 100
    assert rows["oracle"][4:] == ["1.000", "1.000"] and rows["constant"][4:] == ["0.500", "0.500"]
    # UHGEval: split by which continuation is longer
    longer = sum(len(it.fields["hallucinatedContinuation"]) > len(it.fields["realContinuation"]) for it in news)
    rows = {r[2]: r for r in split if r[0] == "uhgeval_slice"}
    assert set(rows) == {"oracle", "constant"} and all(r[1] == "disc_sentence" for r in rows.values())
    assert rows["oracle"][3] == f"{longer} of 40" and 0 < longer < 40
    assert rows["oracle"][4:] == ["1.000", "1.000"] and rows["constant"][4:] == ["0.500", "0.500"]


def test_a_run_of_some_datasets_writes_its_own_section():
    config = "configs/halueval/laptop.yaml"
    full = yaml.safe_load(Path(config).read_text())
    assert section_name(full, config) == "halueval"
    only = {**full, "datasets": [d for d in full["datasets"] if d["name"] == "uhgeval"]}
    assert section_name(only, config) == "halueval_uhgeval"


def test_resume_needs_a_run_directory(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--resume", str(tmp_path)])
    assert exit_.value.code == 2 and "no config.yaml" in capsys.readouterr().err


def test_each_shipped_config_pairs_its_compressed_models_with_their_dense_model():
    laptop = yaml.safe_load(Path("configs/halueval/laptop.yaml").read_text())
    assert compression_pairs(laptop) == ("smollm2-135m", ["smollm2-135m-basel-0.5"])
    qwen = yaml.safe_load(Path("configs/halueval/qwen_compressed.yaml").read_text())
    assert compression_pairs(qwen) == ("qwen2.5-coder-1.5b-hf", ["qwen2.5-coder-1.5b-basel-0.5",
                                                               "qwen2.5-coder-1.5b-basel-0.75"])
    assert section_name(qwen, "configs/halueval/qwen_compressed.yaml") == "halueval_qwen_compressed"

"""bench.halueval_reference's row: a verdict only where both sides have valid answers."""

from __future__ import annotations

from bench.halueval_reference import COLUMNS, comparison_row


def _cmp(ours, theirs):
    pairs = [{"item": str(i), "ours": o, "ours_valid": o is not None, "theirs": t, "theirs_valid": t is not None,
              "same_text": [True]} for i, (o, t) in enumerate(zip(ours, theirs))]
    return {"items": len(pairs), "validity_agrees": sum(p["ours_valid"] == p["theirs_valid"] for p in pairs),
            "score_agrees": 0, "valid_both": 0, "replies": len(pairs), "same_replies": len(pairs), "pairs": pairs}


def test_no_valid_answer_on_either_side_is_not_a_verdict():
    row, ours, theirs = comparison_row("halueval", "halueval_qa", _cmp([None] * 4, [None] * 4), 40.0, 20.0, 4)
    assert len(row) == len(COLUMNS)
    assert row[COLUMNS.index("within 1 SE")] == "n/a: no valid answer on either side"
    assert ours[2] == theirs[2] == 0
    assert row[COLUMNS.index("ours s/item")] == "10.0" and row[COLUMNS.index("eval-suite / ours time")] == "0.50x"


def test_scores_within_one_standard_error_are_met_and_far_apart_are_missed():
    near, _, _ = comparison_row("selective", "uhgeval", _cmp([1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]), 1.0, 1.0, 4)
    far, _, _ = comparison_row("selective", "uhgeval", _cmp([1.0] * 8, [0.0] * 8), 1.0, 1.0, 8)
    one_sided, _, _ = comparison_row("selective", "uhgeval", _cmp([1.0, None], [None, None]), 1.0, 1.0, 2)
    col = COLUMNS.index("within 1 SE")
    assert (near[col], far[col]) == ("met", "MISSED")
    assert one_sided[col] == "n/a: no valid answer on eval-suite's side"


def test_the_label_says_how_our_side_ran():
    from bench.halueval_reference import MODELS, label
    from core.config import apply_overrides

    qwen = MODELS["qwen2.5-coder-1.5b"]
    assert "2 actors with one server each at 1 thread, single-slot" in label(qwen)
    two = {**qwen, "llm": apply_overrides(qwen["llm"], ["llamacpp.parallel=2", "llamacpp.ctx=8192"])}
    assert "2 slots decoded together, context 8192 tokens" in label(two)
    smol = MODELS["smollm2-135m"]
    assert "the prefix cache on" in label(smol)
    off = {**smol, "llm": apply_overrides(smol["llm"], ["hf.prefix_cache=false"])}
    assert "batches of 4, no prefix cache" in label(off)
    assert "{ours}" not in label(smol) + label(qwen)
    hf = MODELS["qwen2.5-coder-1.5b-hf"]
    # both sides load the same registry model through transformers: ours by its llm config, the
    # reference by the entry's name
    assert hf["llm"]["backend"] == "hf" and hf["llm"]["hf"]["model"]["name"] == hf["name"] == "qwen2.5-coder-1.5b"
    assert "2 actors, the prefix cache on" in label(hf) and "fp32" in label(hf)
    assert len({m["section"] for m in MODELS.values()}) == len(MODELS)


def test_a_dataset_the_config_lacks_is_refused_naming_the_allowed_ones(capsys):
    import pytest

    from bench.halueval import main

    with pytest.raises(SystemExit) as e:
        main(["--datasets", "uhgeval,halueval_dialogue"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "halueval_dialogue not in configs/halueval/laptop.yaml" in err and "allowed: uhgeval, halueval_qa" in err

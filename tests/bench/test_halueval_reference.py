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
    assert row[COLUMNS.index("ours s/item")] == "10" and row[COLUMNS.index("eval-suite / ours time")] == "0.50x"


def test_scores_within_one_standard_error_are_met_and_far_apart_are_missed():
    near, _, _ = comparison_row("selective", "uhgeval", _cmp([1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]), 1.0, 1.0, 4)
    far, _, _ = comparison_row("selective", "uhgeval", _cmp([1.0] * 8, [0.0] * 8), 1.0, 1.0, 8)
    one_sided, _, _ = comparison_row("selective", "uhgeval", _cmp([1.0, None], [None, None]), 1.0, 1.0, 2)
    col = COLUMNS.index("within 1 SE")
    assert (near[col], far[col]) == ("met", "MISSED")
    assert one_sided[col] == "n/a: no valid answer on eval-suite's side"

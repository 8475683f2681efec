"""The scripted judges' known scores on real UHGEval and HaluEval items, and the position-bias control."""

import pytest

from evals.cache import AnswerCache
from evals.data import load_items
from evals.evaluators import Selective, build_evaluator
from evals.judges import ScriptedJudge
from evals.leaderboard import aggregate
from evals.runner import run_evaluator

TASKS = [("uhgeval_slice", "disc_keyword"), ("uhgeval_slice", "disc_sentence"), ("uhgeval_slice", "selective"),
         ("halueval_qa", "halueval")]


@pytest.fixture(scope="module")
def items():
    return {"uhgeval_slice": load_items("uhgeval_slice", 120, 0), "halueval_qa": load_items("halueval_qa", 120, 0)}


def _rows(items, judge, tmp_path):
    cache = AnswerCache(tmp_path)
    for ds, ev in TASKS:
        run_evaluator(build_evaluator(ev), items[ds], judge, cache, ds, seed=0, chunk_items=64)
    return {(r["evaluator"], r["by"]): r for r in aggregate(cache.all_records())}


def test_oracle_scores_one(items, tmp_path):
    rows = _rows(items, ScriptedJudge("oracle"), tmp_path)
    for (_, ev) in TASKS:
        for by in ("text", "likelihood"):
            assert rows[(ev, by)]["score"] == 1.0 and rows[(ev, by)]["invalid_share"] == 0.0


def test_constant_scores_half_everywhere(items, tmp_path):
    rows = _rows(items, ScriptedJudge("constant"), tmp_path)
    for (_, ev) in TASKS:
        assert rows[(ev, "text")]["score"] == 0.5, ev  # balanced by construction, exactly
        assert rows[(ev, "likelihood")]["ranked"] == 0.5, ev  # every pair a tie


def test_ranked_is_one_for_the_oracle_and_near_half_for_the_random_judge(items, tmp_path):
    oracle = _rows(items, ScriptedJudge("oracle"), tmp_path)
    rand = _rows(items, ScriptedJudge("random", seed=3), tmp_path / "r")
    for (_, ev) in TASKS:
        assert oracle[(ev, "likelihood")]["ranked"] == 1.0, ev
        r = rand[(ev, "likelihood")]
        assert abs(r["ranked"] - 0.5) < 3 * r["ranked_se"] + 0.02, (ev, r["ranked"], r["ranked_se"])
        assert "ranked" not in oracle[(ev, "text")]


def test_random_scores_near_half(items, tmp_path):
    rows = _rows(items, ScriptedJudge("random", seed=3), tmp_path)
    for (_, ev) in TASKS:
        r = rows[(ev, "text")]
        assert abs(r["score"] - 0.5) < 3 * r["se"] + 0.02, (ev, r["score"], r["se"])


def test_position_bias_control(items, tmp_path):
    """A judge that always answers A is right only when the real text comes first: both orders expose
    it (bias 1.0) where the reference's single order would report 0 or 1 depending on length parity."""
    rows = _rows(items, ScriptedJudge("constant"), tmp_path)
    c = rows[("selective", "text")]
    assert c["real_first"] == 1.0 and c["real_second"] == 0.0 and c["position_bias"] == 1.0 and c["chose_a"] == 1.0
    parity = [Selective.reference_order(it) for it in items["uhgeval_slice"]]
    assert c["reference_order"] == pytest.approx(parity.count("real_first") / len(parity))
    o = _rows(items, ScriptedJudge("oracle"), tmp_path / "o")[("selective", "text")]
    assert o["position_bias"] == 0.0 and o["chose_a"] == 0.5


def test_selective_asks_both_orders_with_the_same_texts(items):
    it = items["uhgeval_slice"][0]
    a, b = Selective().queries(it, {})
    f = it.fields
    assert a.truth == 0 and b.truth == 1
    assert a.text.index(f["realContinuation"]) < a.text.index(f["hallucinatedContinuation"])
    assert b.text.index(f["hallucinatedContinuation"]) < b.text.index(f["realContinuation"])


def test_keyword_queries_are_balanced(items):
    for it in items["uhgeval_slice"][:20]:
        ev = build_evaluator("disc_keyword")
        if ev.applies_to(it):
            truths = [q.truth for q in ev.queries(it, {})]
            assert truths.count(1) == truths.count(0) >= 1

"""The scorer on hand-computed cases: micro P/R/F1 by exact (type, string), per-type tables and
span-level F1 for NER with offsets."""

import pytest

from ie import score
from ie.experiment import evaluate
from ie.data import Example


def test_micro_prf_by_hand():
    pred = [{("person", "lee"), ("location", "kabul"), ("person", "bob")}, set()]
    gold = [{("person", "lee"), ("location", "paris")}, {("group", "arsenal")}]
    m = score.micro(zip(pred, gold))
    assert (m.tp, m.n_pred, m.n_gold) == (1, 3, 3)
    assert m.precision == pytest.approx(1 / 3) and m.recall == pytest.approx(1 / 3) and m.f1 == pytest.approx(1 / 3)


def test_empty_predictions_and_gold_give_zero_not_nan():
    m = score.micro([(set(), set())])
    assert (m.precision, m.recall, m.f1) == (0.0, 0.0, 0.0)


def test_per_type():
    t = score.per_type([({("person", "a"), ("group", "b")}, {("person", "a"), ("person", "c")})])
    assert t["person"].tp == 1 and t["person"].n_pred == 1 and t["person"].n_gold == 2
    assert t["group"].precision == 0.0 and t["group"].n_gold == 0


def test_normalization_is_case_space_and_edge_punctuation_only():
    assert score.normalize('  "Taylor   Swift". ') == "taylor swift"
    assert score.normalize("U.S") == "u.s"  # inner punctuation stays


def test_exact_match_needs_the_type_and_the_whole_string():
    ex = [Example("1", "Taylor Swift sang in London .", [
        {"type": "person", "text": "Taylor Swift", "start": 0, "end": 12},
        {"type": "location", "text": "London", "start": 21, "end": 27}])]
    m, per_type = evaluate("ner", ex, {"1": [("person", "Taylor"), ("location", "london"), ("group", "London")]})
    assert (m["tp"], m["pred"], m["gold"]) == (1, 3, 2)
    assert m["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    # spans: 'Taylor' is a span that is not gold; london -> (21, 27) matches; group London is a wrong type
    assert m["span_precision"] == pytest.approx(1 / 3) and m["span_recall"] == pytest.approx(1 / 2)
    assert set(per_type) == {"person", "location", "group"}


def test_span_f1_differs_from_string_f1_when_a_string_repeats():
    # gold marks only the second 'Apple'; the string-level match is perfect, the span level is not
    text = "Apple pie from Apple ."
    ex = [Example("1", text, [{"type": "corporation", "text": "Apple", "start": 15, "end": 20}])]
    m, _ = evaluate("ner", ex, {"1": [("corporation", "Apple")]})
    assert m["f1"] == 1.0
    assert m["span_precision"] == 0.5 and m["span_recall"] == 1.0


def test_find_spans_respects_word_boundaries_and_falls_back_to_any_case():
    assert score.find_spans("Lee and Leeds", "Lee") == [(0, 3)]
    assert score.find_spans("LONDON calling", "London") == [(0, 6)]
    assert score.find_spans("nothing here", "London") == []


def test_relation_and_event_scoring():
    ex = [Example("1", "x", [{"relation": "spouse", "subject": "A", "object": "B"}])]
    m, _ = evaluate("re", ex, {"1": [("spouse", "a", "b"), ("spouse", "B", "A")]})
    assert (m["tp"], m["pred"], m["gold"]) == (1, 2, 1)  # direction matters
    ev = [Example("1", "x", [{"type": "Life.Die.Unspecified", "arguments": [{"role": "Victim", "text": "soldiers"}]}])]
    m, _ = evaluate("ee", ev, {"1": [("Life.Die.Unspecified", "", ""), ("Life.Die.Unspecified", "Victim", "soldiers"),
                                     ("Life.Die.Unspecified", "Place", "Kabul")]})
    assert (m["tp"], m["pred"], m["gold"]) == (1, 2, 1)
    assert m["type_f1"] == 1.0

"""Timing in turns: every call once per round, in order, and ratios taken within rounds."""

import pytest

from core.timing import ratio_in_turns, ratios_in_turns, timed_in_turns


def test_calls_take_turns_after_one_warm_up_each():
    log = []
    times = timed_in_turns({"a": lambda: log.append("a"), "b": lambda: log.append("b")}, rounds=3)
    assert log == ["a", "b"] + ["a", "b"] * 3
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}


def test_ratio_is_the_median_of_per_round_ratios():
    # the machine slows down 4x in round 2; both calls see it, so every round's ratio is 2
    times = {"dense": [2.0, 8.0, 2.2], "small": [1.0, 4.0, 1.1]}
    assert ratio_in_turns(times, "dense", "small") == pytest.approx(2.0)
    assert ratio_in_turns(times, "small", "dense") == pytest.approx(0.5)
    assert ratios_in_turns(times, "dense", "small") == pytest.approx([2.0, 2.0, 2.0])


def test_rounds_must_be_positive():
    with pytest.raises(ValueError, match="rounds"):
        timed_in_turns({"a": lambda: None}, rounds=0)

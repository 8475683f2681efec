"""Wall-clock timing of several callables in turns.

A shared CPU's speed drifts by tens of percent over minutes, so two models timed one after the
other can differ by more than their real gap. Timing each once per round, in turn, exposes them
to the same drift, and the ratio of their times within a round cancels it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed_in_turns(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each call, `rounds` times, every call once per round in the given order, after
    one warm-up call each."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            t = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t)
    return times


def ratios_in_turns(times: dict[str, list[float]], reference: str, name: str) -> list[float]:
    """Per round, the reference's time over `name`'s (above 1: `name` is faster)."""
    return [a / b for a, b in zip(times[reference], times[name])]


def ratio_in_turns(times: dict[str, list[float]], reference: str, name: str) -> float:
    """The median over rounds of the reference's time over `name`'s (above 1: `name` is faster)."""
    return statistics.median(ratios_in_turns(times, reference, name))


__all__ = ["ratio_in_turns", "ratios_in_turns", "timed_in_turns"]

"""EffiBench's overhead metrics: ET, MU, TMU of one program, run-to-run noise, and NET/NMU/NTMU of a
set of programs against the canonical solutions (ratios of totals over the tasks where both ran)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Overhead:
    et_s: float  # execution time of one pass over the tests, median of the timed runs
    mu_mb: float  # peak resident memory
    tmu_mbs: float  # resident memory integrated over the execution time (MB x s)
    et_spread: float = 0.0  # (max - min) / median of the timed runs' ET: the measured noise

    @classmethod
    def from_profile(cls, p: dict) -> Overhead:
        return cls(p["et_s"], p["mu_mb"], p["tmu_mbs"], relative_spread(p.get("et_runs") or [p["et_s"]]))


def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    if not s:
        raise ValueError("median of nothing")
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def relative_spread(xs: Sequence[float]) -> float:
    m = median(xs)
    return (max(xs) - min(xs)) / m if m > 0 else 0.0


def normalized(pairs: Sequence[tuple[Overhead | None, Overhead | None]]) -> dict[str, float | int]:
    """NET, NMU, NTMU of (code, canonical) pairs: sum over the pairs where both ran of the code's cost
    divided by the canonical's (EffiBench: ratios of totals, so long tasks weigh more)."""
    both = [(c, r) for c, r in pairs if c is not None and r is not None]
    if not both:
        return {"NET": float("nan"), "NMU": float("nan"), "NTMU": float("nan"), "tasks": 0}
    return {"NET": sum(c.et_s for c, _ in both) / sum(r.et_s for _, r in both),
            "NMU": sum(c.mu_mb for c, _ in both) / sum(r.mu_mb for _, r in both),
            "NTMU": sum(c.tmu_mbs for c, _ in both) / sum(r.tmu_mbs for _, r in both),
            "tasks": len(both)}


def pass_at_1(passed: Sequence[bool]) -> float:
    return sum(passed) / len(passed) if passed else float("nan")


def faster_beyond_noise(current: Overhead, new: Overhead, min_rel_gain: float) -> bool:
    """New is faster than current by more than either's run-to-run spread (and min_rel_gain)."""
    margin = max(min_rel_gain, current.et_spread, new.et_spread)
    return new.et_s < current.et_s * (1.0 - margin)

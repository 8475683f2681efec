"""Decision thresholds tuned on a dev split: one global threshold (best micro-F1) and one per label
(SCut: each label's best F1). Candidates are a fixed grid, so that ties resolve the same way."""

from __future__ import annotations

import numpy as np

from multilabel.metrics import counts, f1_from_counts, micro_f1


def threshold_grid(points: int) -> np.ndarray:
    """`points` thresholds evenly spaced strictly inside (0, 1)."""
    return np.linspace(0.0, 1.0, points + 2)[1:-1]


def tune_global_threshold(probs: np.ndarray, y: np.ndarray, grid: np.ndarray) -> float:
    """The grid threshold with the best dev micro-F1; ties go to the one closest to 0.5."""
    scores = np.asarray([micro_f1(y, probs >= t) for t in grid])
    best = np.flatnonzero(scores == scores.max())
    return float(grid[best[np.argmin(np.abs(grid[best] - 0.5))]])


def tune_label_thresholds(probs: np.ndarray, y: np.ndarray, grid: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per label, the grid threshold with the best dev F1 (ties: closest to 0.5). A label without a
    dev positive keeps `default`: every threshold above its largest dev probability scores the same
    (0 F1), so dev says nothing about it."""
    out = np.full(y.shape[1], default, dtype=np.float64)
    table = np.stack([f1_from_counts(*counts(y, probs >= t)) for t in grid])  # (grid, L)
    for label in np.flatnonzero(y.sum(0) > 0):
        col = table[:, label]
        best = np.flatnonzero(col == col.max())
        out[label] = grid[best[np.argmin(np.abs(grid[best] - 0.5))]]
    return out


__all__ = ["threshold_grid", "tune_global_threshold", "tune_label_thresholds"]

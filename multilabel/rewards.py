"""Rewards for the meta-learner, from the classifier's dev probabilities under sampled thresholds.
Each returns per-label rewards (samples, L) where the metric splits over labels, else (samples,):
- micro_f1_gain: dev micro-F1 minus the reference's (BCE + 0.5); one number per sample.
- macro_f1_gain: per-label dev F1 minus the reference's; labels without a dev positive get 0.
- margin: a soft F1 per label in which each prediction counts sigmoid((p - tau) / T), i.e. by its
  probability margin over the threshold, minus the reference's soft F1 at tau = 0.5."""

from __future__ import annotations

import numpy as np

from multilabel.metrics import counts, f1_from_counts, micro_f1

REWARDS = ("micro_f1_gain", "macro_f1_gain", "margin")


def soft_f1(probs: np.ndarray, y: np.ndarray, thresholds: np.ndarray, temperature: float) -> np.ndarray:
    """Per label 2 TP~ / (2 TP~ + FP~ + FN~), with soft predictions sigmoid((p - tau) / T)."""
    s = 1.0 / (1.0 + np.exp(-(probs - thresholds[None]) / temperature))
    tp = (s * y).sum(0)
    fp = (s * (1 - y)).sum(0)
    fn = ((1 - s) * y).sum(0)
    return f1_from_counts(tp, fp, fn)


def reward(kind: str, probs: np.ndarray, y: np.ndarray, thresholds: np.ndarray, temperature: float = 0.05) -> np.ndarray:
    """(samples, L) or (samples,) raw rewards for (samples, L) thresholds, before the reference."""
    has_pos = y.sum(0) > 0
    out = []
    for tau in thresholds:
        pred = probs >= tau[None]
        if kind == "micro_f1_gain":
            out.append(micro_f1(y, pred))
        elif kind == "macro_f1_gain":
            out.append(np.where(has_pos, f1_from_counts(*counts(y, pred)), 0.0))
        elif kind == "margin":
            out.append(np.where(has_pos, soft_f1(probs, y, tau, temperature), 0.0))
        else:
            raise ValueError(f"unknown reward {kind!r}; allowed: {', '.join(REWARDS)}")
    return np.asarray(out, dtype=np.float64)


def reference(kind: str, probs: np.ndarray, y: np.ndarray, temperature: float = 0.05) -> np.ndarray:
    """The reward of BCE + 0.5's dev probabilities at 0.5: subtracted to make rewards gains."""
    return reward(kind, probs, y, np.full((1, y.shape[1]), 0.5), temperature)[0]


__all__ = ["REWARDS", "reference", "reward", "soft_f1"]

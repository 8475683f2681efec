"""Multi-label F1 from indicator matrices (n x L): micro, macro over the labels with a positive in
the evaluated split, per label, and the rarest-third macro-F1 (rarity by training count)."""

from __future__ import annotations

import numpy as np


def counts(y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True positives, false positives, false negatives per label."""
    y, pred = y.astype(bool), pred.astype(bool)
    return (y & pred).sum(0).astype(np.float64), (~y & pred).sum(0).astype(np.float64), \
        (y & ~pred).sum(0).astype(np.float64)


def f1_from_counts(tp, fp, fn) -> np.ndarray:
    """2tp / (2tp + fp + fn), 0 where the denominator is 0 (sklearn's zero_division=0)."""
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    den = 2 * tp + fp + fn
    return np.divide(2 * tp, den, out=np.zeros_like(den), where=den > 0)


def per_label_f1(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return f1_from_counts(*counts(y, pred))


def micro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    tp, fp, fn = counts(y, pred)
    return float(f1_from_counts(tp.sum(), fp.sum(), fn.sum()))


def evaluated_labels(y: np.ndarray) -> np.ndarray:
    """Labels with at least one positive: F1 is undefined for the others (no positive, no TP)."""
    return np.flatnonzero(y.sum(0) > 0)


def macro_f1(y: np.ndarray, pred: np.ndarray, labels: np.ndarray | None = None) -> float:
    labels = evaluated_labels(y) if labels is None else labels
    if len(labels) == 0:
        return 0.0
    return float(per_label_f1(y[:, labels], pred[:, labels]).mean())


def rare_labels(y_eval: np.ndarray, train_counts: np.ndarray, fraction: float = 1 / 3) -> np.ndarray:
    """The rarest `fraction` (by training count, ties by index) of the labels evaluated on y_eval."""
    labels = evaluated_labels(y_eval)
    k = max(1, int(np.ceil(fraction * len(labels))))
    order = np.lexsort((labels, train_counts[labels]))
    return np.sort(labels[order[:k]])


def predict(probs: np.ndarray, thresholds: np.ndarray | float) -> np.ndarray:
    """1[p_l >= tau_l]."""
    return probs >= np.asarray(thresholds)[None] if np.ndim(thresholds) else probs >= thresholds


def summarize(y: np.ndarray, probs: np.ndarray, thresholds, train_counts: np.ndarray,
              rare_fraction: float = 1 / 3) -> dict:
    pred = predict(probs, thresholds)
    return {"micro_f1": micro_f1(y, pred), "macro_f1": macro_f1(y, pred),
            "rare_f1": macro_f1(y, pred, rare_labels(y, train_counts, rare_fraction)),
            "per_label_f1": per_label_f1(y, pred).tolist()}


__all__ = ["counts", "evaluated_labels", "f1_from_counts", "macro_f1", "micro_f1", "per_label_f1", "predict",
           "rare_labels", "summarize"]

"""Threshold tuning on constructed cases whose best threshold is known."""

import numpy as np
import pytest

from multilabel.thresholds import threshold_grid, tune_global_threshold, tune_label_thresholds


def test_grid_is_inside_the_unit_interval():
    g = threshold_grid(9)
    assert g.tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])


def test_per_label_thresholds_find_the_separating_gap():
    # label 0: positives at 0.31..0.39, negatives below 0.25: any threshold in (0.25, 0.31] is perfect;
    # label 1: positives above 0.85, negatives up to 0.8: the gap is (0.8, 0.85]
    # label 2: no dev positive -> the default
    rng = np.random.default_rng(0)
    n = 40
    y = np.zeros((n, 3))
    y[:10, 0] = 1
    y[20:28, 1] = 1
    probs = np.zeros((n, 3))
    probs[:, 0] = np.where(y[:, 0] == 1, rng.uniform(0.31, 0.39, n), rng.uniform(0.0, 0.25, n))
    probs[:, 1] = np.where(y[:, 1] == 1, rng.uniform(0.851, 0.95, n), rng.uniform(0.2, 0.8, n))
    probs[:, 2] = rng.uniform(0, 1, n)
    grid = threshold_grid(99)
    tau = tune_label_thresholds(probs, y, grid, default=0.5)
    for label in (0, 1):
        pos, neg = probs[y[:, label] == 1, label], probs[y[:, label] == 0, label]
        assert neg.max() < tau[label] <= pos.min()
    assert tau[2] == 0.5
    # the perfect thresholds closest to 0.5 are picked among ties
    assert tau[0] == pytest.approx(grid[grid <= probs[y[:, 0] == 1, 0].min()].max())


def test_global_threshold_is_the_micro_f1_optimum():
    # three labels sharing one scale: positives in [0.6, 0.7], negatives in [0.1, 0.55]
    rng = np.random.default_rng(1)
    y = (rng.random((50, 3)) < 0.3).astype(float)
    probs = np.where(y == 1, rng.uniform(0.6, 0.7, y.shape), rng.uniform(0.1, 0.55, y.shape))
    t = tune_global_threshold(probs, y, threshold_grid(99))
    assert probs[y == 0].max() < t <= probs[y == 1].min()


def test_global_threshold_trades_precision_for_recall_where_that_pays():
    # one label, 1 positive at 0.2 among 10 negatives at 0.1: only a threshold in (0.1, 0.2] finds it
    y = np.zeros((11, 1))
    y[0] = 1
    probs = np.full((11, 1), 0.1)
    probs[0] = 0.2
    assert 0.1 < tune_global_threshold(probs, y, threshold_grid(99)) <= 0.2

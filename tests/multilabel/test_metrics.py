"""Every metric against scikit-learn's."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from multilabel.metrics import macro_f1, micro_f1, per_label_f1, predict, rare_labels, summarize


@pytest.mark.parametrize("seed", range(5))
def test_f1s_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random((60, 12)) < rng.random(12) * 0.3).astype(np.float32)
    y[:, 3] = 0  # a label without positives
    probs = rng.random((60, 12))
    pred = probs > 0.6
    assert micro_f1(y, pred) == pytest.approx(f1_score(y, pred, average="micro", zero_division=0))
    assert np.allclose(per_label_f1(y, pred), f1_score(y, pred, average=None, zero_division=0))
    labels = np.flatnonzero(y.sum(0) > 0)
    assert 3 not in labels
    assert macro_f1(y, pred) == pytest.approx(f1_score(y, pred, average="macro", labels=labels, zero_division=0))
    rare = rare_labels(y, train_counts=np.arange(12)[::-1], fraction=1 / 3)
    assert macro_f1(y, pred, rare) == pytest.approx(f1_score(y, pred, average="macro", labels=rare, zero_division=0))


def test_rare_labels_are_the_least_frequent_third_of_evaluated_labels():
    y = np.zeros((4, 7))
    y[0, [0, 1, 2, 3, 4, 5]] = 1  # label 6 has no test positive
    counts = np.array([50, 3, 9, 1, 40, 2, 0])
    assert rare_labels(y, counts, 1 / 3).tolist() == [3, 5]  # 6 evaluated labels: the 2 with 1 and 2 examples
    assert rare_labels(y, counts, 0.5).tolist() == [1, 3, 5]


def test_per_label_thresholds_predict_per_column():
    probs = np.array([[0.3, 0.3], [0.6, 0.1]])
    assert predict(probs, np.array([0.2, 0.5])).tolist() == [[True, False], [True, False]]
    assert predict(probs, 0.5).tolist() == [[False, False], [True, False]]
    s = summarize(np.array([[1, 1], [1, 1]], dtype=float), probs, np.array([0.2, 0.05]), np.array([5, 1]))
    assert s["micro_f1"] == pytest.approx(1.0) and s["macro_f1"] == pytest.approx(1.0)

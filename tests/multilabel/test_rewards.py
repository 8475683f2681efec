"""Rewards: the F1 rewards are the metrics; the margin reward's soft F1 tends to F1 as T -> 0."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from multilabel.rewards import reference, reward, soft_f1


def _case(seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((40, 5)) < 0.3).astype(float)
    y[:, 4] = 0  # no dev positive
    probs = np.clip(y * 0.4 + rng.random((40, 5)) * 0.6, 0, 1)
    return y, probs


def test_f1_rewards_are_the_metrics():
    y, probs = _case()
    taus = np.array([[0.5] * 5, [0.3, 0.4, 0.5, 0.6, 0.7]])
    micro = reward("micro_f1_gain", probs, y, taus)
    macro = reward("macro_f1_gain", probs, y, taus)
    assert micro.shape == (2,) and macro.shape == (2, 5)
    for i, tau in enumerate(taus):
        pred = probs >= tau
        assert micro[i] == pytest.approx(f1_score(y, pred, average="micro", zero_division=0))
        assert np.allclose(macro[i, :4], f1_score(y[:, :4], pred[:, :4], average=None, zero_division=0))
        assert macro[i, 4] == 0.0
    assert np.allclose(reference("macro_f1_gain", probs, y), macro[0])


def test_margin_reward_is_a_soft_f1_that_tends_to_f1():
    y, probs = _case(1)
    tau = np.full(5, 0.55)
    hard = f1_score(y[:, :4], probs[:, :4] >= 0.55, average=None, zero_division=0)
    assert np.allclose(soft_f1(probs, y, tau, 1e-4)[:4], hard, atol=1e-3)
    soft = reward("margin", probs, y, tau[None], temperature=0.05)[0]
    assert soft[4] == 0.0 and np.all((soft >= 0) & (soft <= 1))
    # a threshold in the middle of the positives' range beats one above all of them
    assert reward("margin", probs, y, np.full((1, 5), 0.99), 0.05)[0, :4].sum() < soft[:4].sum()


def test_unknown_reward_is_refused():
    y, probs = _case()
    with pytest.raises(ValueError, match="allowed"):
        reward("accuracy", probs, y, np.full((1, 5), 0.5))

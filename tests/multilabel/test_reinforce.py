"""The policy-gradient estimator on toy bandits whose optimum is known: it must find it."""

import numpy as np
import pytest
import torch

from multilabel.config import MetaConfig
from multilabel.meta import initial_state, policy_step
from multilabel.policy import MetaLearner, label_inputs, label_order
from multilabel.reinforce import MovingAverageBaseline, reinforce_loss


def test_reinforce_finds_the_best_arm_of_a_bandit():
    """5 arms with Bernoulli rewards; arm 3 pays most. A softmax policy trained with the estimator
    and a moving-average baseline puts most of its mass on arm 3."""
    means = np.array([0.2, 0.5, 0.3, 0.8, 0.6])
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    logits = torch.zeros(5, requires_grad=True)
    opt = torch.optim.SGD([logits], lr=0.5)
    baseline = MovingAverageBaseline(0.9)
    for _ in range(600):
        probs = torch.softmax(logits, 0)
        arms = torch.multinomial(probs.detach(), 8, replacement=True, generator=gen)
        rewards = (rng.random(8) < means[arms.numpy()]).astype(float)
        b = baseline.get(rewards)
        loss = reinforce_loss(torch.log(probs[arms]), rewards, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        baseline.update(rewards.mean())
    final = torch.softmax(logits, 0).detach().numpy()
    assert final.argmax() == 3
    assert final[3] > 0.8


def test_estimator_is_unbiased_on_a_gaussian_bandit():
    """For a ~ N(mu, s^2) and reward -(a - c)^2, dE[r]/dmu = -2 (mu - c); the estimator's mean
    over many samples matches it, with or without a constant baseline."""
    mu = torch.tensor(0.3, requires_grad=True)
    s, c = 0.5, 1.0
    gen = torch.Generator().manual_seed(1)
    a = (mu.detach() + s * torch.randn(200_000, generator=gen, dtype=torch.float64)).float()
    r = -((a - c) ** 2).numpy()
    for b in (0.0, -0.7):
        logp = -0.5 * ((a - mu) / s) ** 2
        (g,) = torch.autograd.grad(-reinforce_loss(logp, r, b), mu)
        assert float(g) == pytest.approx(-2 * (0.3 - c), abs=0.03)


def test_meta_learner_policy_starts_at_bce_with_one_half():
    names = ["a", "b", "c"]
    counts = np.array([10, 1, 4])
    pol = MetaLearner(label_inputs(names, counts), label_order(names, counts, "frequency"), seed=0)
    w, tau = pol.policy()
    assert np.allclose(w, 1.0) and np.allclose(tau, 0.5)


@pytest.mark.parametrize("credit,labels,steps", [("per_label", 6, 800), ("global", 3, 1500)])
def test_meta_learner_finds_known_thresholds_and_weights(credit, labels, steps):
    """A bandit shaped like the real problem: reward per label -(tau_l - t_l)^2 - (w_l - v_l)^2 with
    known targets (one number per sample with global credit: a harder, slower problem, so fewer
    labels). The GRU policy, trained by `policy_step` (the job's own update), moves its mean
    thresholds and weights to the targets."""
    names = [f"l{i}" for i in range(labels)]
    counts = np.array([100, 50, 20, 8, 3, 1])[:labels]
    t_star = np.array([0.7, 0.2, 0.45, 0.3, 0.6, 0.15])[:labels]
    v_star = np.array([0.6, 2.0, 1.0, 1.5, 0.8, 2.5])[:labels]
    cfg = MetaConfig(lr=0.05, sigma=0.3, threshold_samples=8, credit=credit, baseline_beta=0.8)
    pol = MetaLearner(label_inputs(names, counts), label_order(names, counts, "frequency"), hidden=16, sigma=cfg.sigma,
                      seed=0)
    state = initial_state(pol, cfg, np.zeros(labels))
    gen = torch.Generator().manual_seed(0)
    before = np.abs(pol.policy()[1] - t_star).max()
    for _ in range(steps):
        w_action = pol.sample(gen, 1)
        tau_actions = pol.sample(gen, cfg.threshold_samples)
        w = MetaLearner.weights(w_action[0]).numpy()
        tau = MetaLearner.thresholds(tau_actions).numpy()
        r = -(tau - t_star) ** 2 - (w - v_star)[None] ** 2  # (samples, labels)
        if credit == "global":
            r = r.mean(1, keepdims=True)
        policy_step(state, cfg, w_action, tau_actions, r)
    w, tau = pol.policy()
    assert before >= 0.3
    assert np.abs(tau - t_star).max() < 0.06, tau
    assert np.abs(w - v_star).max() < 0.25, w

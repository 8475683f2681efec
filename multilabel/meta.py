"""Meta-learning episodes: each episode samples label weights and thresholds from the GRU policy,
trains the classifier with those weights (same initialisation and batch order every episode, so
the weights are the only change), scores the sampled thresholds on the dev probabilities, and
takes one REINFORCE step. The state round-trips through a dict for checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from core.seeding import derive_seed
from multilabel.classifier import ClassifierConfig, predict_proba, train_classifier
from multilabel.config import MetaConfig
from multilabel.losses import weighted_bce
from multilabel.metrics import macro_f1, micro_f1
from multilabel.policy import MetaLearner, label_inputs, label_order
from multilabel.reinforce import MovingAverageBaseline, reinforce_loss
from multilabel.rewards import reference, reward


@dataclass
class MetaState:
    policy: MetaLearner
    optimizer: torch.optim.Optimizer
    baseline: MovingAverageBaseline
    reference: np.ndarray  # the BCE + 0.5 reward on dev, subtracted from every reward
    episode: int = 0
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "baseline": self.baseline.state(), "reference": self.reference.tolist(), "episode": self.episode,
                "history": self.history}


def build_policy(names: list[str], train_counts: np.ndarray, cfg: MetaConfig, seed: int) -> MetaLearner:
    return MetaLearner(label_inputs(names, train_counts), label_order(names, train_counts, cfg.order),
                       hidden=cfg.hidden, embed=cfg.embed, sigma=cfg.sigma, seed=derive_seed(seed, "meta-init"))


def initial_state(policy: MetaLearner, cfg: MetaConfig, reference_reward: np.ndarray) -> MetaState:
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    return MetaState(policy, opt, MovingAverageBaseline(cfg.baseline_beta), np.asarray(reference_reward))


def load_state(policy: MetaLearner, cfg: MetaConfig, saved: dict) -> MetaState:
    state = initial_state(policy, cfg, np.asarray(saved["reference"]))
    policy.load_state_dict(saved["policy"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.baseline = MovingAverageBaseline(cfg.baseline_beta, saved["baseline"])
    state.episode, state.history = saved["episode"], list(saved["history"])
    return state


def _credit(r: np.ndarray, cfg: MetaConfig, has_pos: np.ndarray) -> np.ndarray:
    """(samples, L) rewards for per-label credit; (samples, 1) when one number scores a sample."""
    if r.ndim == 1:
        return r[:, None]
    if cfg.credit == "global":
        return r[:, has_pos].mean(1, keepdims=True) if has_pos.any() else r.mean(1, keepdims=True)
    return r


def policy_step(state: MetaState, cfg: MetaConfig, w_action: torch.Tensor, tau_actions: torch.Tensor,
                tau_rewards: np.ndarray) -> float:
    """One REINFORCE update from an episode: the weights' sample is scored by the mean reward over
    the threshold samples against a moving-average baseline (per label with per-label credit);
    each threshold sample by its own reward against the other samples' mean. Returns the loss."""
    r_w = tau_rewards.mean(0, keepdims=True)  # (1, L) or (1, 1)
    if state.baseline.value is None:  # start the average at the first reward, not at 0
        state.baseline.update(r_w[0])
    b = state.baseline.get(r_w)
    m = tau_rewards.shape[0]
    # The threshold draws share one classifier, so each is compared with the others' mean
    # (leave-one-out): unbiased, and free of the episode-to-episode swing the weights cause.
    b_tau = (tau_rewards.sum(0, keepdims=True) - tau_rewards) / (m - 1) if m > 1 else np.broadcast_to(b, tau_rewards.shape)
    logp_w = state.policy.log_prob(w_action)[..., 0]  # (1, L)
    logp_tau = state.policy.log_prob(tau_actions)[..., 1]  # (M, L)
    if r_w.shape[1] == 1:  # one reward for the whole sample: its log-prob is the sum over labels
        logp_w, logp_tau = logp_w.sum(1, keepdim=True), logp_tau.sum(1, keepdim=True)
    loss = reinforce_loss(logp_w, r_w, b) + reinforce_loss(logp_tau, tau_rewards, b_tau)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    state.baseline.update(r_w[0])
    return float(loss.detach())


def meta_episode(state: MetaState, x: dict[str, np.ndarray], y: dict[str, np.ndarray], clf_cfg: ClassifierConfig,
                 cfg: MetaConfig, kind: str, seed: int) -> dict:
    gen = torch.Generator().manual_seed(derive_seed(seed, "meta-episode", kind, state.episode))
    w_action = state.policy.sample(gen, 1)
    tau_actions = state.policy.sample(gen, cfg.threshold_samples)
    w = MetaLearner.weights(w_action[0]).float()
    model = train_classifier(x["train"], y["train"], lambda lo, yy: weighted_bce(lo, yy, w), clf_cfg,
                             derive_seed(seed, "classifier"))
    probs = predict_proba(model, x["dev"])
    taus = MetaLearner.thresholds(tau_actions).numpy()
    raw = reward(kind, probs, y["dev"], taus, cfg.temperature)
    gains = raw - state.reference[None] if raw.ndim == 2 else raw - float(state.reference)
    has_pos = y["dev"].sum(0) > 0
    credited = _credit(gains, cfg, has_pos)
    loss = policy_step(state, cfg, w_action, tau_actions, credited)
    _, tau_mean = state.policy.policy()
    pred = probs >= tau_mean[None]
    record = {"episode": state.episode, "reward": float(credited.mean()), "loss": loss,
              "dev_macro_f1": macro_f1(y["dev"], pred), "dev_micro_f1": micro_f1(y["dev"], pred),
              "mean_weight": float(w.mean()), "mean_threshold": float(tau_mean.mean())}
    state.episode += 1
    state.history.append(record)
    return record


def reference_reward(x: dict[str, np.ndarray], y: dict[str, np.ndarray], clf_cfg: ClassifierConfig, cfg: MetaConfig,
                     kind: str, seed: int) -> np.ndarray:
    """BCE (w = 1) with the episodes' initialisation, scored at 0.5 on dev."""
    model = train_classifier(x["train"], y["train"], weighted_bce, clf_cfg, derive_seed(seed, "classifier"))
    return reference(kind, predict_proba(model, x["dev"]), y["dev"], cfg.temperature)


__all__ = ["MetaState", "build_policy", "initial_state", "load_state", "meta_episode", "policy_step",
           "reference_reward"]

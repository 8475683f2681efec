"""REINFORCE with a moving-average baseline: the surrogate loss whose gradient is the score-function
estimate of -grad E[reward], for one reward per sample or one per (sample, label)."""

from __future__ import annotations

import numpy as np
import torch


class MovingAverageBaseline:
    """b <- beta b + (1 - beta) r, starting at the first reward seen (scalar or per label)."""

    def __init__(self, beta: float = 0.9, value: np.ndarray | float | None = None):
        self.beta = beta
        self.value = None if value is None else np.asarray(value, dtype=np.float64)

    def get(self, like: np.ndarray) -> np.ndarray:
        return np.zeros_like(like, dtype=np.float64) if self.value is None else np.broadcast_to(self.value, like.shape)

    def update(self, reward: np.ndarray) -> None:
        reward = np.asarray(reward, dtype=np.float64)
        self.value = reward.copy() if self.value is None else self.beta * self.value + (1 - self.beta) * reward

    def state(self) -> list | None:
        return None if self.value is None else np.asarray(self.value).tolist()


def reinforce_loss(log_prob: torch.Tensor, reward: np.ndarray | torch.Tensor,
                   baseline: np.ndarray | torch.Tensor | float = 0.0) -> torch.Tensor:
    """-mean (r - b) * log pi(a): log_prob and reward have the same shape ((samples,) or
    (samples, labels)); the advantage is a constant to autograd."""
    adv = torch.as_tensor(np.asarray(reward, dtype=np.float64) - np.asarray(baseline, dtype=np.float64),
                          dtype=log_prob.dtype, device=log_prob.device)
    return -(adv.detach() * log_prob).mean()


__all__ = ["MovingAverageBaseline", "reinforce_loss"]

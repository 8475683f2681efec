"""The meta-learner: a GRU that reads the labels in an order (frequency, or the type hierarchy) and
emits for each label a training weight w_l = softplus(a_l) and a threshold tau_l = sigmoid(b_l).
The policy is Gaussian in (a, b): means from the GRU, a fixed exploration std; its mean starts at
w = 1, tau = 0.5 (plain BCE with 0.5), so episode 0 explores around the usual default."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from multilabel.data import hierarchy_depth, is_hierarchical

SOFTPLUS_INV_1 = math.log(math.e - 1.0)  # softplus(x) = 1


def label_order(names: list[str], train_counts: np.ndarray, order: str) -> np.ndarray:
    """Indices of the labels in reading order. "frequency": most frequent first (ties by name).
    "hierarchy": depth-first over the type paths, a parent before its children, siblings by
    frequency."""
    if order == "frequency":
        return np.asarray(sorted(range(len(names)), key=lambda i: (-int(train_counts[i]), names[i])))
    if not is_hierarchical(names):
        raise ValueError("hierarchy order needs type paths like /a/b for every label")
    index = {n: i for i, n in enumerate(names)}
    children: dict[str, list[str]] = {}
    for n in names:
        parent = n.rsplit("/", 1)[0]
        # a path whose parent is not a label hangs from the root
        children.setdefault(parent if parent in index else "", []).append(n)
    out: list[int] = []

    def visit(node: str) -> None:
        for c in sorted(children.get(node, []), key=lambda n: (-int(train_counts[index[n]]), n)):
            out.append(index[c])
            visit(c)

    visit("")
    return np.asarray(out)


def label_inputs(names: list[str], train_counts: np.ndarray) -> np.ndarray:
    """Per label: standardised log(1 + training count), training prevalence, hierarchy depth."""
    logc = np.log1p(train_counts.astype(np.float64))
    std = logc.std() if logc.std() > 0 else 1.0
    prev = train_counts / max(1, train_counts.max())
    return np.stack([(logc - logc.mean()) / std, prev, hierarchy_depth(names)], axis=1).astype(np.float32)


class MetaLearner(nn.Module):
    def __init__(self, inputs: np.ndarray, order: np.ndarray, hidden: int = 32, embed: int = 8,
                 sigma: float = 0.3, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            n = len(order)
            self.register_buffer("inputs", torch.as_tensor(inputs[order]))
            self.register_buffer("order", torch.as_tensor(order, dtype=torch.long))
            self.embed = nn.Embedding(n, embed)  # the label's own identity, in reading position
            self.gru = nn.GRU(inputs.shape[1] + embed, hidden, batch_first=True)
            self.out = nn.Linear(hidden, 2)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():
            self.out.bias.copy_(torch.tensor([SOFTPLUS_INV_1, 0.0]))
        self.sigma = sigma

    def means(self) -> torch.Tensor:
        """(L, 2) means of (a, b) in the labels' original index order."""
        x = torch.cat([self.inputs, self.embed.weight], dim=1).unsqueeze(0)
        h, _ = self.gru(x)
        mu_read = self.out(h[0])
        mu = torch.empty_like(mu_read)
        mu[self.order] = mu_read
        return mu

    def sample(self, generator: torch.Generator, samples: int = 1) -> torch.Tensor:
        """(samples, L, 2) pre-activations."""
        with torch.no_grad():
            mu = self.means()
            noise = torch.randn((samples, *mu.shape), generator=generator, dtype=mu.dtype)
            return mu + self.sigma * noise

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """(samples, L, 2) log-densities of each coordinate under N(mu, sigma^2)."""
        mu = self.means()
        return -0.5 * ((actions - mu) / self.sigma) ** 2 - math.log(self.sigma) - 0.5 * math.log(2 * math.pi)

    @staticmethod
    def weights(actions: torch.Tensor) -> torch.Tensor:
        return F.softplus(actions[..., 0])

    @staticmethod
    def thresholds(actions: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(actions[..., 1])

    def policy(self) -> tuple[np.ndarray, np.ndarray]:
        """The mean policy's (weights, thresholds), used for the final classifier and prediction."""
        with torch.no_grad():
            mu = self.means()
        return self.weights(mu).numpy().astype(np.float64), self.thresholds(mu).numpy().astype(np.float64)


__all__ = ["MetaLearner", "label_inputs", "label_order"]

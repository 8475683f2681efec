"""ReFusion's fusion candidates: turn the k retrieved representations into one vector r.

Both take Z (batch x k x D, the neighbours in rank order) and return r (batch x D), which the
wrapped key/value projection adds at the CLS position.
- Reranker: a learnable weight per rank position, r = (1/k) sum_i softmax(R)_i z_i.
- Ordered mask: nested-dropout-style keep probabilities per (rank, dimension); the mask that
  decides how many of the top ranks dimension d keeps is sampled with a Gumbel-softmax over
  the k ranks while training (the reference code took it over the dimensions) and replaced
  by its expectation at evaluation, so predictions are deterministic.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Reranker(nn.Module):
    def __init__(self, k: int):
        super().__init__()
        self.k = k
        self.R = nn.Parameter(torch.zeros(k))  # uniform over ranks at the start

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.R, dim=0)
        return torch.einsum("k,bkd->bd", w, z) / self.k


class OrderedMask(nn.Module):
    """pi = sigmoid(clamp(beta)); q_i = (prod_{j<=i} pi_j)(1 - pi_i) is the chance that the
    kept prefix ends at rank i; c ~ GumbelSoftmax(log q) over ranks; m_i = sum_{j>=i} c_j keeps
    rank i when the prefix ends at or after it; r = (1/k) sum_i m_i z_i, per dimension."""

    def __init__(self, k: int, dim: int, tau: float = 5.0, seed: int = 0):
        super().__init__()
        self.k, self.dim, self.tau = k, dim, tau
        self.beta = nn.Parameter(torch.zeros(k, dim))
        self._gen = torch.Generator().manual_seed(seed)

    def end_probs(self) -> torch.Tensor:
        """q (k x D): the probability that dimension d's kept prefix ends at rank i, normalised over ranks."""
        pi = torch.sigmoid(self.beta.clamp(-5.0, 5.0))
        q = torch.cumprod(pi, dim=0) * (1 - pi)
        return q / q.sum(dim=0, keepdim=True).clamp_min(1e-12)

    def mask(self) -> torch.Tensor:
        q = self.end_probs()
        if self.training:
            u = torch.rand(q.shape, generator=self._gen).to(q.device).clamp_(1e-10, 1 - 1e-10)
            c = F.softmax((q.clamp_min(1e-12).log() - torch.log(-torch.log(u))) / self.tau, dim=0)  # over the k ranks
        else:
            c = q
        # m_i = sum_{j >= i} c_j: a reversed cumulative sum over ranks
        return torch.flip(torch.cumsum(torch.flip(c, [0]), dim=0), [0])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.mask().unsqueeze(0) * z).sum(dim=1) / self.k


__all__ = ["OrderedMask", "Reranker"]

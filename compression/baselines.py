"""The low-rank baselines at a given rank: truncated SVD, Fisher-weighted SVD, activation-aware SVD.

Each returns the factors (up m x r, down r x n) of its rank-r approximation of W (y = W x).
- SVD: the top-r singular triplets.
- FWSVD (Hsu et al., ICLR 2022): row (output unit) importance I_i = sum_j Fisher_ij,
  D = diag(sqrt(I)); SVD(D W) = U S V^T; W_r = D^-1 U_r S_r V_r^T, the minimiser of
  ||D (W - W_r)||_F. "Row" means an output row of nn.Linear's weight here.
- ASVD (Yuan et al., 2023): S = diag(mean |x_j| ^ alpha) over calibration tokens; SVD(W S);
  W_r = U_r S_r V_r^T S^-1, which keeps the input channels with large activations accurate.
All SVDs are exact (float64), not randomised.
"""

from __future__ import annotations

import torch

from compression.lowrank import balanced_factors
from core.config import require

EPS = 1e-8


def _svd(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    u, s, vh = torch.linalg.svd(w.detach().to(torch.float64), full_matrices=False)
    return u, s, vh.T


def _check_rank(rank: int, w: torch.Tensor) -> None:
    require(1 <= rank <= min(w.shape), "rank", f"must be in [1, {min(w.shape)}] for a {tuple(w.shape)} weight, got {rank}")


def rank_for_ratio(m: int, n: int, ratio: float) -> int:
    """The rank whose factors hold `ratio` of the m x n parameters: floor(ratio m n / (m + n)), >= 1."""
    require(0.0 < ratio <= 1.0, "keep_ratio", f"must be in (0, 1], got {ratio}")
    return max(1, int(ratio * m * n / (m + n)))


def svd_factors(w: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    _check_rank(rank, w)
    u, s, v = _svd(w)
    return balanced_factors(u[:, :rank], s[:rank], v[:, :rank])


def fwsvd_factors(w: torch.Tensor, fisher: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`fisher`: the m x n per-entry Fisher information (mean squared gradient), or its m row sums."""
    _check_rank(rank, w)
    rows = fisher.to(torch.float64)
    rows = rows.sum(dim=1) if rows.dim() == 2 else rows
    require(rows.shape == (w.shape[0],), "fisher", f"expected {w.shape[0]} row importances, got {tuple(rows.shape)}")
    d = rows.clamp_min(EPS).sqrt()
    u, s, v = _svd(d.unsqueeze(1) * w.to(torch.float64))
    up, down = balanced_factors(u[:, :rank], s[:rank], v[:, :rank])
    return up / d.unsqueeze(1), down


def asvd_factors(w: torch.Tensor, act_absmean: torch.Tensor, rank: int, alpha: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """`act_absmean`: mean |x_j| of each of the n input channels over calibration tokens."""
    _check_rank(rank, w)
    require(act_absmean.shape == (w.shape[1],), "act_absmean",
            f"expected {w.shape[1]} input-channel statistics, got {tuple(act_absmean.shape)}")
    scale = act_absmean.to(torch.float64).clamp_min(EPS).pow(alpha)
    u, s, v = _svd(w.to(torch.float64) * scale.unsqueeze(0))
    up, down = balanced_factors(u[:, :rank], s[:rank], v[:, :rank])
    return up, down / scale.unsqueeze(0)


__all__ = ["asvd_factors", "fwsvd_factors", "rank_for_ratio", "svd_factors"]

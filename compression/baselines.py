"""The low-rank baselines at a given rank: truncated SVD, Fisher-weighted SVD, activation-aware SVD.

Each returns the factors (up m x r, down r x n) of its rank-r approximation of W (y = W x).
- SVD: the top-r singular triplets.
- FWSVD (Hsu et al., ICLR 2022): row (output unit) importance I_i = sum_j Fisher_ij,
  D = diag(sqrt(I)); SVD(D W) = U S V^T; W_r = D^-1 U_r S_r V_r^T, the minimiser of
  ||D (W - W_r)||_F. "Row" means an output row of nn.Linear's weight here.
- ASVD (Yuan et al., 2023): S = diag(mean |x_j| ^ alpha) over calibration tokens; SVD(W S);
  W_r = U_r S_r V_r^T S^-1, which keeps the input channels with large activations accurate.
  Its per-layer ranks come from a sensitivity search (compression.asvd).
All SVDs are exact (float64), not randomised. `allocate_ranks` turns per-layer ratios and a
global parameter budget into ranks: each layer's floor, then the leftover parameters as extra
ranks, so that every method lands on the same parameter count.
"""

from __future__ import annotations

from collections.abc import Mapping

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


def allocate_ranks(shapes: Mapping[str, tuple[int, int]], budget: int,
                   ratios: Mapping[str, float] | float) -> dict[str, int]:
    """Per layer, its rank: rank_for_ratio(m, n, ratio) first, then one extra rank at a time, in
    passes over the layers in the given order, while the next one fits the budget and the layer
    is below full rank. The result is within min(m + n) parameters of `budget` (or at every
    layer's full rank). A layer at ratio >= 1 is left out (it stays dense; pass its m n out of
    the budget yourself). Raises ConfigError if the floors alone exceed the budget."""
    per = {n: float(ratios) if isinstance(ratios, (int, float)) else float(ratios[n]) for n in shapes}
    ranks = {n: rank_for_ratio(*shapes[n], r) for n, r in per.items() if r < 1.0}
    cost = {n: shapes[n][0] + shapes[n][1] for n in ranks}
    left = budget - sum(ranks[n] * cost[n] for n in ranks)
    require(left >= 0, "keep_ratio", f"the layers' ranks need {budget - left:,} parameters, over the budget {budget:,}")
    grew = True
    while grew:
        grew = False
        for n in ranks:
            if cost[n] <= left and ranks[n] < min(shapes[n]):
                ranks[n] += 1
                left -= cost[n]
                grew = True
    return ranks


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


__all__ = ["allocate_ranks", "asvd_factors", "fwsvd_factors", "rank_for_ratio", "svd_factors"]

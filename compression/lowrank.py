"""The compressed form of a linear layer: two nn.Linear, n -> rank -> m.

Every method (Basel and the SVD baselines) ends as factors (up m x r, down r x n); the
layer computes up(down(x)) + bias. Basel's basis layer is re-factorised by an SVD of the
matrix it computes (rank <= kept bases + new bases); parameters shrink only when
rank < m n / (m + n).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from compression.bases import DROP_FRACTION, BasisLinear, _set_module


class LowRankLinear(nn.Module):
    """y = up(down(x)): `down` n -> r without bias, `up` r -> m with the original bias."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=bias)

    @classmethod
    def from_factors(cls, up: torch.Tensor, down: torch.Tensor, bias: torch.Tensor | None,
                     dtype: torch.dtype = torch.float32) -> "LowRankLinear":
        layer = cls(down.shape[1], up.shape[0], up.shape[1], bias=bias is not None)
        with torch.no_grad():
            layer.down.weight.copy_(down.to(dtype))
            layer.up.weight.copy_(up.to(dtype))
            if bias is not None:
                layer.up.bias.copy_(bias.to(dtype))
        return layer.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))

    def params(self) -> int:
        return self.rank * (self.in_features + self.out_features)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, rank={self.rank}"


def balanced_factors(u: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(U sqrt(s), sqrt(s) V^T): the factors of U diag(s) V^T with equal scale on both sides."""
    root = s.sqrt()
    return u * root, (v * root).T


def basis_svd(layer: BasisLinear) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact thin SVD (u m x q, s q, v n x q), in float64, of the matrix a basis layer computes.

    That matrix is L R^T with L = [U_k diag(c_k), A] and R = [V_k, B^T] over its r = kept + new
    bases, so a QR of each side and the SVD of the r x r core give it in O((m + n) r^2). The dense
    SVD costs O(m n min(m, n)): on Qwen2.5-1.5B's 196 projections, 11 minutes on 2 cores.
    """
    keep = layer.mask != 0
    r = int(keep.sum()) + layer.new_bases
    if r >= min(layer.in_features, layer.out_features):
        u, s, vh = torch.linalg.svd(layer.dense_weight().detach().to(torch.float64), full_matrices=False)
        return u, s, vh.T
    with torch.no_grad():
        c = layer.coefficients[keep].to(torch.float64)
        left = torch.cat([layer.U[:, keep].to(torch.float64) * c, layer.A.to(torch.float64)], dim=1)
        right = torch.cat([layer.V[:, keep].to(torch.float64), layer.B.to(torch.float64).T], dim=1)
        q_left, r_left = torch.linalg.qr(left)
        q_right, r_right = torch.linalg.qr(right)
        uc, s, vch = torch.linalg.svd(r_left @ r_right.T)
        return q_left @ uc, s, q_right @ vch.T


def refactor_factors(layer: BasisLinear, max_rank: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(up, down) of a basis layer: an exact SVD of what it computes, truncated to the kept + new
    bases (its rank can be no higher), without the noise singular values; float64."""
    u, s, v = basis_svd(layer)
    rank = layer.kept + layer.new_bases if max_rank is None else max_rank
    # the mean over all min(m, n) singular values, as bases.svd takes it (the rest are 0 here)
    noise = DROP_FRACTION * s.sum() / min(layer.in_features, layer.out_features)
    rank = max(1, min(rank, int((s > noise).sum())))
    return balanced_factors(u[:, :rank], s[:rank], v[:, :rank])


def refactor(layer: BasisLinear, max_rank: int | None = None) -> LowRankLinear:
    """The LowRankLinear of a basis layer (refactor_factors), with its bias."""
    up, down = refactor_factors(layer, max_rank)
    bias = None if layer.bias is None else layer.bias.detach()
    return LowRankLinear.from_factors(up, down, bias, dtype=layer.w.dtype)


def refactor_model(model: nn.Module) -> dict[str, int]:
    """Replace every BasisLinear by its LowRankLinear in place; return {name: rank}."""
    ranks = {}
    for name, module in list(model.named_modules()):
        if isinstance(module, BasisLinear):
            low = refactor(module)
            _set_module(model, name, low)
            ranks[name] = low.rank
    return ranks


def install_factors(model: nn.Module, factors: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, int]:
    """Replace each named nn.Linear by LowRankLinear(up, down) with its bias; return {name: rank}."""
    ranks = {}
    for name, (up, down) in factors.items():
        old = model.get_submodule(name)
        bias = None if getattr(old, "bias", None) is None else old.bias.detach()
        low = LowRankLinear.from_factors(up, down, bias, dtype=old.weight.dtype)
        _set_module(model, name, low)
        ranks[name] = low.rank
    return ranks


def low_rank_params(model: nn.Module) -> int:
    return sum(m.params() for m in model.modules() if isinstance(m, LowRankLinear))


__all__ = ["LowRankLinear", "balanced_factors", "basis_svd", "install_factors", "low_rank_params", "refactor",
           "refactor_factors", "refactor_model"]

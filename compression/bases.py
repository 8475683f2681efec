"""Basel's reparametrisation of a linear layer: W = U diag(c * mask) V^T + A B.

The SVD bases (columns of U and V) are frozen; each gets a coefficient c = w^2 (w learnable,
initialised to sqrt(s), so c starts at the singular value and stays non-negative) and a 0/1
mask that pruning clears. A B are `new_bases` trainable rank-1 bases, LoRA-shaped (A = 0, so
the layer starts as W up to the dropped singular values). The forward pass never builds the
m x n matrix: it costs (m + n) * (kept + new) per token, where the reference code paid m * n.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn as nn

from core.config import ConfigError, require

# Singular values at or below this fraction of their mean are noise: dropped at decomposition
# and at re-factorisation (the paper's rule).
DROP_FRACTION = 1e-3


def svd(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact thin SVD in float64 (U m x q, s q, V n x q), without the noise singular values."""
    u, s, vh = torch.linalg.svd(weight.detach().to(torch.float64), full_matrices=False)
    keep = s > DROP_FRACTION * s.mean()
    return u[:, keep], s[keep], vh[keep].T


class BasisLinear(nn.Module):
    """y = ((x V) * c * mask) U^T + (x B^T) A^T + bias, from an nn.Linear."""

    def __init__(self, linear: nn.Linear, new_bases: int = 0, seed: int = 0):
        super().__init__()
        require(new_bases >= 0, "new_bases", f"must be >= 0, got {new_bases}")
        self.in_features, self.out_features = linear.in_features, linear.out_features
        dtype = linear.weight.dtype
        u, s, v = svd(linear.weight)
        self.register_buffer("U", u.to(dtype).contiguous())  # m x q
        self.register_buffer("V", v.to(dtype).contiguous())  # n x q
        self.register_buffer("mask", torch.ones(s.numel(), dtype=dtype))
        self.w = nn.Parameter(s.sqrt().to(dtype))
        g = torch.Generator().manual_seed(seed)
        self.A = nn.Parameter(torch.zeros(self.out_features, new_bases, dtype=dtype))
        self.B = nn.Parameter((torch.randn(new_bases, self.in_features, generator=g, dtype=torch.float64)
                               / math.sqrt(max(new_bases, 1))).to(dtype))
        # Only the coefficients and the new bases train (the and the paper's part 1).
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    @property
    def coefficients(self) -> torch.Tensor:
        """c * mask: what each SVD basis contributes (0 once pruned)."""
        return self.w.square() * self.mask

    @property
    def kept(self) -> int:
        return int(self.mask.count_nonzero())

    @property
    def new_bases(self) -> int:
        return self.A.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = ((x @ self.V) * self.coefficients) @ self.U.T
        if self.new_bases:
            y = y + (x @ self.B.T) @ self.A.T
        return y if self.bias is None else y + self.bias

    def dense_weight(self) -> torch.Tensor:
        """The m x n matrix this layer computes (for conversion and tests, not the forward)."""
        w = (self.U * self.coefficients) @ self.V.T
        return w + self.A @ self.B if self.new_bases else w

    def factorized_params(self) -> int:
        """Parameters of the two Linears this layer converts to: rank (kept + new) x (m + n)."""
        return (self.kept + self.new_bases) * (self.in_features + self.out_features)

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, bases={self.kept}/{self.mask.numel()}, "
                f"new={self.new_bases}")


def matching_linears(model: nn.Module, patterns: Iterable[str], key: str = "target_modules") -> list[str]:
    """Names of the nn.Linear modules whose last name component is in `patterns` (or whose full
    name is). A pattern that matches nothing is refused, naming the linears there are."""
    patterns = list(patterns)
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    found = [n for n in linears if n.rsplit(".", 1)[-1] in patterns or n in patterns]
    for p in patterns:
        if not any(n.rsplit(".", 1)[-1] == p or n == p for n in found):
            kinds = sorted({n.rsplit(".", 1)[-1] for n in linears})
            raise ConfigError(key, f"{p!r} matches no nn.Linear in the model; its linear layers: {', '.join(kinds)}")
    return found


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def to_basis_model(model: nn.Module, targets: Iterable[str], new_bases: int, seed: int = 0) -> dict[str, BasisLinear]:
    """Replace the target linears by BasisLinear in place; freeze everything else.

    Returns {name: layer}. Tied weights (lm_head tied to the embeddings) are refused: a tie
    must stay dense, or the embedding would be decomposed with it.
    """
    names = matching_linears(model, targets)
    tied = _tied_linears(model)
    for n in names:
        if n in tied:
            raise ConfigError("target_modules", f"{n} shares its weight with the input embeddings (tied); "
                                                "it stays dense: remove it from target_modules")
    model.requires_grad_(False)
    layers = {}
    for i, n in enumerate(names):
        layer = BasisLinear(model.get_submodule(n), new_bases, seed=seed + i)
        _set_module(model, n, layer)
        layers[n] = layer
    return layers


def _tied_linears(model: nn.Module) -> set[str]:
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if emb is None:
        return set()
    return {n for n, m in model.named_modules() if isinstance(m, nn.Linear) and m.weight is emb.weight}


def basis_layers(model: nn.Module) -> dict[str, BasisLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, BasisLinear)}


__all__ = ["BasisLinear", "DROP_FRACTION", "basis_layers", "matching_linears", "svd", "to_basis_model"]

"""The adaptive retrieval integrator: every key and value projection of an HF encoder becomes a
mix over {no fusion, reranker, ordered mask}, weighted by softmax(alpha) while searching and
fixed to one choice afterwards.

A candidate changes the projection's output y = W h + b only at the CLS position (y[:, 0] += g r),
so every token sees the retrieval through CLS's key and value. The mix is therefore
y[:, 0] += g sum_c softmax(alpha)_c r_c, with r = 0 for "no fusion": one projection, not three.

g is a learnable gain per module. The paper adds mean-pooled BERT-large states with no gain
(g = 1). Sentence encoders give unit-norm embeddings, which makes r at most 1/k long, while the
key/value outputs it is added to are 12 to 701 times the mean retrieval (bench.refusion_scale),
so unscaled fusion barely touches the model. `calibrate_gains` sets each g from data, as ActNorm
initialises its scale, so that r starts at a chosen fraction of the CLS output's norm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn as nn

from core.config import ConfigError, require
from retrieval.fusion import OrderedMask, Reranker

CANDIDATES = ("none", "reranker", "ordered_mask")
# Encoder families whose attention has separate key/value nn.Linear at `<layer>.attention.self.{key,value}`.
SUPPORTED = ("bert", "roberta", "xlm-roberta", "electra", "camembert")

Choice = Literal["search", "none", "reranker", "ordered_mask"]


class RetrievalContext:
    """The current batch's retrievals, shared by all wrapped projections (set before forward)."""

    def __init__(self):
        self.z: torch.Tensor | None = None
        # while calibrating: per module, (mean norm of the CLS output, mean norm of the uniform reranker's r)
        self.norms: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None


class FusedProjection(nn.Module):
    def __init__(self, linear: nn.Linear, k: int, ctx: RetrievalContext, choice: Choice = "search",
                 tau: float = 5.0, seed: int = 0):
        super().__init__()
        self.linear, self.ctx = linear, ctx
        self.reranker = Reranker(k)
        self.ordered_mask = OrderedMask(k, linear.out_features, tau=tau, seed=seed)
        # alpha starts uniform and, unlike the reference code, is trainable
        self.alpha = nn.Parameter(torch.zeros(len(CANDIDATES)))
        self.gain = nn.Parameter(torch.ones(()))
        self.choice: Choice = choice

    def candidate_vectors(self, z: torch.Tensor) -> torch.Tensor:
        """(batch, candidates, D): r of each candidate; "none" is the zero vector."""
        return torch.stack([torch.zeros_like(z[:, 0]), self.reranker(z), self.ordered_mask(z)], dim=1)

    def fusion(self, z: torch.Tensor) -> torch.Tensor:
        if self.choice == "none":
            return torch.zeros_like(z[:, 0])
        if self.choice == "reranker":
            return self.reranker(z)
        if self.choice == "ordered_mask":
            return self.ordered_mask(z)
        w = torch.softmax(self.alpha, dim=0)
        return torch.einsum("c,bcd->bd", w, self.candidate_vectors(z))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        y = self.linear(h)
        z = self.ctx.z
        if self.ctx.norms is not None and z is not None:
            self.ctx.norms[id(self)] = (y[:, 0].norm(dim=-1).mean(), z.mean(dim=1).norm(dim=-1).mean() / z.shape[1])
        if z is None or self.choice == "none":
            return y
        r = self.gain * self.fusion(z.to(y.dtype))
        return torch.cat([(y[:, 0] + r).unsqueeze(1), y[:, 1:]], dim=1)


def _kv_names(model: nn.Module, family: str) -> list[str]:
    names = [n for n, m in model.named_modules()
             if isinstance(m, nn.Linear) and n.endswith(("attention.self.key", "attention.self.value"))]
    if family not in SUPPORTED or not names:
        raise ConfigError("model.name", f"a {family} encoder has no supported key/value projections; supported "
                                        f"families: {', '.join(SUPPORTED)}")
    return names


class RetrievalIntegrator(nn.Module):
    """Wraps `backbone` (an HF encoder) in place; `project` maps encoder-width retrievals to the
    backbone's width when they differ (a learned linear map)."""

    def __init__(self, backbone: nn.Module, k: int, retrieval_dim: int, choice: Choice = "search", tau: float = 5.0,
                 seed: int = 0):
        super().__init__()
        require(k >= 1, "k", f"must be >= 1, got {k}")
        require(choice in ("search", *CANDIDATES), "choice",
                f"{choice!r} is not allowed; allowed values: 'search', {', '.join(map(repr, CANDIDATES))}")
        family = getattr(backbone.config, "model_type", type(backbone).__name__)
        hidden = backbone.config.hidden_size
        self.ctx = RetrievalContext()
        self.project = nn.Identity() if retrieval_dim == hidden else nn.Linear(retrieval_dim, hidden)
        self.names = _kv_names(backbone, family)
        self.modules_ = nn.ModuleDict()
        for i, name in enumerate(self.names):
            parent, _, child = name.rpartition(".")
            wrapped = FusedProjection(backbone.get_submodule(name), k, self.ctx, choice, tau, seed + i)
            setattr(backbone.get_submodule(parent), child, wrapped)
            self.modules_[name.replace(".", "__")] = wrapped

    def set_retrievals(self, z: torch.Tensor | None) -> None:
        self.ctx.z = None if z is None else self.project(z)

    def arch_parameters(self) -> list[nn.Parameter]:
        return [m.alpha for m in self.modules_.values()]

    @torch.no_grad()
    def freeze_alpha(self, seed: int) -> dict[str, str]:
        """ReFusion as released: alpha gets a Xavier-uniform draw (the reference code's init, per
        module, from `seed`) and never trains, so the "search" keeps the argmax of that draw.
        Returns the choices it fixes."""
        g = torch.Generator().manual_seed(seed)
        for m in self.modules_.values():
            bound = (6.0 / (1 + len(CANDIDATES))) ** 0.5  # xavier_uniform_ on a (1, candidates) matrix
            m.alpha.copy_((torch.rand(len(CANDIDATES), generator=g) * 2 - 1) * bound)
            m.alpha.requires_grad_(False)
        return self.choices()

    def fusion_parameters(self) -> list[nn.Parameter]:
        """Everything the inner loop trains besides the backbone: rerankers, masks, gains, the projection."""
        out = [p for m in self.modules_.values() for p in (*m.reranker.parameters(), *m.ordered_mask.parameters(), m.gain)]
        return out + list(self.project.parameters())

    @torch.no_grad()
    def calibrate_gains(self, forward: Callable[[], object], scale: float) -> dict[str, float]:
        """Set every module's gain so that the uniform reranker's r (the mean retrieval over k)
        is `scale` times the mean norm of the CLS output it is added to, on the retrievals set
        and the inputs `forward` runs. Runs the model once, unfused, to measure; returns the gains."""
        require(scale > 0, "fusion_scale", f"must be > 0 to calibrate, got {scale}")
        require(self.ctx.z is not None, "retrievals", "calibrating the gains needs retrievals set")
        saved = {n: m.choice for n, m in zip(self.names, self.modules_.values())}
        self.set_choices(dict.fromkeys(self.names, "none"))
        self.ctx.norms = {}
        try:
            forward()
            norms = self.ctx.norms
        finally:
            self.ctx.norms = None
            for name, m in zip(self.names, self.modules_.values()):
                m.choice = saved[name]  # type: ignore[assignment]
        gains = {}
        for name, m in zip(self.names, self.modules_.values()):
            y_norm, r_norm = norms[id(m)]
            m.gain.fill_(float(scale * y_norm / r_norm.clamp_min(1e-12)))
            gains[name] = float(m.gain)
        return gains

    def choices(self) -> dict[str, str]:
        return {name: (m.choice if m.choice != "search" else CANDIDATES[int(m.alpha.argmax())])
                for name, m in zip(self.names, self.modules_.values())}

    def discretize(self) -> dict[str, str]:
        """Keep each module's argmax candidate (identity = no fusion there); returns the choices."""
        chosen = self.choices()
        for name, m in zip(self.names, self.modules_.values()):
            m.choice = chosen[name]  # type: ignore[assignment]
        return chosen

    def set_choices(self, choices: dict[str, str]) -> None:
        """Fix the per-module candidates (Tune's discrete search sets them directly)."""
        for name, m in zip(self.names, self.modules_.values()):
            c = choices.get(name, m.choice)
            require(c in CANDIDATES, f"choices.{name}", f"{c!r} is not allowed; allowed values: {', '.join(CANDIDATES)}")
            m.choice = c  # type: ignore[assignment]


__all__ = ["CANDIDATES", "FusedProjection", "RetrievalContext", "RetrievalIntegrator", "SUPPORTED"]

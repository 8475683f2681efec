"""Forward-gradient estimates with forward-mode AD (torch.func.jvp): no activation graph kept."""

from __future__ import annotations

from typing import Callable

import torch
from torch.func import jvp
from torch.nn.attention import SDPBackend, sdpa_kernel


def perturbations(
    params: dict[str, torch.Tensor], generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """v ~ N(0, I) with the shapes of `params`, drawn in key order from `generator`.

    Drawn with the generator's device and moved to each tensor's device: a CPU generator
    gives the same perturbations whether the client runs on CPU or CUDA, so a server can
    regenerate them from the seed.
    """
    dev = generator.device
    return {
        k: torch.randn(p.shape, generator=generator, device=dev, dtype=torch.float32).to(p.device, p.dtype)
        for k, p in params.items()
    }


def forward_gradient(
    loss_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    params: dict[str, torch.Tensor],
    num_perturbations: int,
    generator: torch.Generator,
    groups: list[list[str]] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], list[float]]:
    """ĝ = (1/K) Σ_k (∇L · v_k) v_k, an unbiased estimate of ∇L since E[v vᵀ] = I.

    With `groups` (a partition of the keys), each group gets its own K perturbations and its
    own jvps, with the other groups' tensors held fixed: the estimate of group j is then
    (1/K) Σ_k (∇_j L · v_jk) v_jk, free of the other groups' gradients (Spry's head on every
    client: the head's g_h·v_h would otherwise add noise to every chunk's estimate). Groups
    are taken in order, and within one, k in order; the scalars come back in that order.

    Returns (loss, ĝ by name, the directional derivatives: K per group). Each jvp costs one
    forward pass carrying tangents; memory stays that of inference.
    """
    groups = groups if groups is not None else [list(params)]
    if sorted(k for g in groups for k in g) != sorted(params):
        raise ValueError(f"groups {groups} must partition the keys {list(params)}")
    grad = {k: torch.zeros_like(params[k]) for k in params}
    jvps: list[float] = []
    loss = None
    for keys in groups:
        fixed = {k: p.detach() for k, p in params.items() if k not in keys}
        primals = tuple(params[k].detach() for k in keys)

        def f(*tensors: torch.Tensor, keys=keys, fixed=fixed) -> torch.Tensor:
            return loss_fn({**fixed, **dict(zip(keys, tensors))})

        for _ in range(num_perturbations):
            v = perturbations({k: params[k] for k in keys}, generator)
            # Forward-mode AD is not implemented for the flash SDPA kernels: a model built with
            # attn_implementation="sdpa" must take the math kernel here (a no-op for "eager").
            with sdpa_kernel(SDPBackend.MATH):
                loss, d = jvp(f, primals, tuple(v[k] for k in keys))
            jvps.append(float(d))
            for k in keys:
                grad[k].add_(v[k], alpha=float(d) / num_perturbations)
    assert loss is not None
    return loss.detach(), grad, jvps

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
) -> tuple[torch.Tensor, dict[str, torch.Tensor], list[float]]:
    """ĝ = (1/K) Σ_k (∇L · v_k) v_k, an unbiased estimate of ∇L since E[v vᵀ] = I.

    Returns (loss, ĝ by name, the K directional derivatives). Each k costs one forward pass
    carrying tangents; memory stays that of inference.
    """
    keys = list(params)
    primals = tuple(params[k].detach() for k in keys)
    grad = {k: torch.zeros_like(params[k]) for k in keys}
    jvps: list[float] = []
    loss = None

    def f(*tensors: torch.Tensor) -> torch.Tensor:
        return loss_fn(dict(zip(keys, tensors)))

    for _ in range(num_perturbations):
        v = perturbations(params, generator)
        # Forward-mode AD is not implemented for the flash SDPA kernels: a model built with
        # attn_implementation="sdpa" must take the math kernel here (a no-op for "eager").
        with sdpa_kernel(SDPBackend.MATH):
            loss, d = jvp(f, primals, tuple(v[k] for k in keys))
        jvps.append(float(d))
        for k in keys:
            grad[k].add_(v[k], alpha=float(d) / num_perturbations)
    assert loss is not None
    return loss.detach(), grad, jvps

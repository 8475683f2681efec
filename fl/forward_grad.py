"""Forward-gradient estimates with forward-mode AD: no activation graph kept.

Two implementations of the jvp (fl.jvp_impl): `func` is torch.func.jvp; `fused` is
torch.autograd.forward_ad with one change, for frozen linear layers: the primal x and its
tangent ẋ go through one matrix product, W·[x; ẋ] (stacked along the batch dimension), instead
of two. A frozen layer's tangent is W·ẋ (no bias, no weight tangent), so the values are those of
torch.func.jvp up to the float rounding of a taller product (tests/fl/test_forward_grad.py).
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch.func import jvp
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode

JvpImpl = Literal["func", "fused"]


class FusedFrozenLinears(TorchFunctionMode):
    """Inside a forward_ad.dual_level: every F.linear whose input carries a tangent and whose
    weight and bias carry none (a frozen layer, LoRA's base layer included) computes the primal
    and the tangent in one product, [y; ẏ] = [x; ẋ]·Wᵀ, then adds the bias to the primal only.
    Linears with a tangent on the weight (LoRA's A and B, the head) take the default rule."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            x, weight = args[0], args[1]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            primal, tangent = fwAD.unpack_dual(x)
            if (tangent is not None and x.dim() >= 2 and fwAD.unpack_dual(weight).tangent is None
                    and (bias is None or fwAD.unpack_dual(bias).tangent is None)):
                n = primal.shape[0]
                both = F.linear(torch.cat([primal, tangent]), weight)
                y, dy = both[:n], both[n:]
                if bias is not None:
                    y = y + bias
                return fwAD.make_dual(y, dy)
        return func(*args, **kwargs)


def fused_jvp(
    f: Callable[..., torch.Tensor], primals: tuple[torch.Tensor, ...], tangents: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(primals), the directional derivative of f along tangents), as torch.func.jvp returns
    them, with forward_ad dual tensors and FusedFrozenLinears."""
    with fwAD.dual_level(), FusedFrozenLinears():
        out = f(*(fwAD.make_dual(p, t) for p, t in zip(primals, tangents)))
        value, tangent = fwAD.unpack_dual(out)
    value = value.detach()
    # an output that does not depend on the primals has no tangent: its derivative is 0
    return value, (torch.zeros_like(value) if tangent is None else tangent.detach())


def jvp_fn(impl: JvpImpl) -> Callable:
    if impl == "fused":
        return fused_jvp
    if impl == "func":
        return jvp
    raise ValueError(f"jvp_impl must be 'func' or 'fused', got {impl!r}")


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
    jvp_impl: JvpImpl = "fused",
) -> tuple[torch.Tensor, dict[str, torch.Tensor], list[float]]:
    """ĝ = (1/K) Σ_k (∇L · v_k) v_k, an unbiased estimate of ∇L since E[v vᵀ] = I.

    With `groups` (a partition of the keys), each group gets its own K perturbations and its
    own jvps, with the other groups' tensors held fixed: the estimate of group j is then
    (1/K) Σ_k (∇_j L · v_jk) v_jk, free of the other groups' gradients (Spry's head on every
    client: the head's g_h·v_h would otherwise add noise to every chunk's estimate). Groups
    are taken in order, and within one, k in order; the scalars come back in that order.

    Returns (loss, ĝ by name, the directional derivatives: K per group). Each jvp costs one
    forward pass carrying tangents; memory stays that of inference. `jvp_impl` picks the
    forward-mode implementation (module docstring).
    """
    run_jvp = jvp_fn(jvp_impl)
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
                loss, d = run_jvp(f, primals, tuple(v[k] for k in keys))
            jvps.append(float(d))
            for k in keys:
                grad[k].add_(v[k], alpha=float(d) / num_perturbations)
    assert loss is not None
    return loss.detach(), grad, jvps

"""Gradient-free estimators (FedMeZO-style SPSA, plain central differences averaged over K
perturbations): the zero-order baselines Spry is compared with.

The `central_diff` method is not FwdLLM: FwdLLM adds an adaptive, variance-controlled number
of perturbations and discriminative perturbation sampling (perturbations chosen by their
cosine with the previous round's global gradient), and neither is implemented here.

Same return convention as fl.forward_grad.forward_gradient — (loss, ĝ by name, the K
projected gradients) — and the same draws (z_k = perturbations(params, generator), k in
order), so a client loop can swap estimators and fl.seed_replay can replay either.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

from fl.forward_grad import perturbations
from fl.local import perturbation_train

LossFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]


@torch.no_grad()  # two plain forward passes: gradient-free means no graph and no tangents
def _projected(
    loss_fn: LossFn, params: dict[str, torch.Tensor], z: dict[str, torch.Tensor], eps: float
) -> tuple[torch.Tensor, float]:
    """(L(w+εz) + L(w-εz))/2 and p = (L(w+εz) - L(w-εz)) / 2ε ≈ ∇L·z.

    The central difference is exact on a quadratic for any ε (odd terms cancel); otherwise its
    error is O(ε²), against float round-off of O(ulp(L)/ε). MeZO perturbs the weights in place
    to save memory; here the chunk is small, so perturbed copies keep `params` untouched.
    """
    plus = loss_fn({k: p + eps * z[k] for k, p in params.items()})
    minus = loss_fn({k: p - eps * z[k] for k, p in params.items()})
    return ((plus + minus) / 2).detach(), float((plus - minus) / (2 * eps))


def central_difference_gradient(
    loss_fn: LossFn,
    params: dict[str, torch.Tensor],
    eps: float,
    num_perturbations: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], list[float]]:
    """ĝ = (1/K) Σ_k p_k z_k with p_k the central difference of L along z_k ~ N(0, I).

    Estimates the same thing as the forward gradient (p_k → ∇L·z_k as ε → 0) at 2K forward
    passes instead of K jvp passes. Returns (mean of the K loss estimates, ĝ, [p_k]); ĝ is
    accumulated as forward_gradient does, so replay from (seed, [p_k]) is bit-for-bit the same.
    """
    grad = {k: torch.zeros_like(p) for k, p in params.items()}
    projections: list[float] = []
    losses = []
    for _ in range(num_perturbations):
        z = perturbations(params, generator)
        loss, p = _projected(loss_fn, params, z, eps)
        projections.append(p)
        losses.append(loss)
        for k in grad:
            grad[k].add_(z[k], alpha=p / num_perturbations)
    return torch.stack(losses).mean(), grad, projections


def spsa_gradient(
    loss_fn: LossFn, params: dict[str, torch.Tensor], eps: float, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, torch.Tensor], list[float]]:
    """MeZO's SPSA: one perturbation, ĝ = p z. Returns ((L+ + L-)/2, ĝ, [p])."""
    return central_difference_gradient(loss_fn, params, eps, 1, generator)


def zeroth_order_train(
    model: torch.nn.Module,
    params: dict[str, torch.Tensor],
    batch_iter: Iterator[dict[str, torch.Tensor]],
    steps: int,
    estimator: str,
    eps: float,
    num_perturbations: int,
    optimizer: str,
    lr: float,
    weight_decay: float,
    seed_parts: tuple,
    lr_overrides: dict[str, float] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, float], list[list[float]]]:
    """spry_train with a gradient-free estimator: "spsa" (K must be 1) or "central" (K >= 1).

    The same loop and seeding as spry_train, so the returned per-step projections replay with
    fl.seed_replay.replay_spry_steps.
    """
    if estimator not in ("spsa", "central"):
        raise ValueError(f"unknown zeroth-order estimator {estimator!r}: 'spsa' or 'central'")
    if estimator == "spsa" and num_perturbations != 1:
        # Refuse rather than silently ignore K: SPSA is K = 1 by definition.
        raise ValueError(f"spsa uses one perturbation, got num_perturbations={num_perturbations}; use 'central'")
    return perturbation_train(
        model, params, batch_iter, steps,
        lambda f, p, g: central_difference_gradient(f, p, eps, num_perturbations, g),
        optimizer, lr, weight_decay, seed_parts, lr_overrides,
    )

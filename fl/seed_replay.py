"""Spry's seed-only uplink: a client sends its K directional derivatives per step instead of
its trained tensors, and the server replays the steps.

This works because ĝ_s = (1/K) Σ_k d_{s,k} v_{s,k} and every v_{s,k} is a function of the
seed alone (drawn on a CPU generator, so the same on any device), and the optimizer is
deterministic given ĝ. The server needs neither the model nor the data. The same replay
covers fl.zeroth_order's estimators, which draw z the same way (d is then the projected
gradient p).
"""

from __future__ import annotations

import torch

from core.seeding import generator
from fl.forward_grad import perturbations
from fl.local import make_optimizer

FLOAT32_BYTES = 4
STEP_HEADER_BYTES = 8


def regenerate_gradient(
    like: dict[str, torch.Tensor], jvps: list[float], gen: torch.Generator,
    groups: list[list[str]] | None = None,
) -> dict[str, torch.Tensor]:
    """ĝ = Σ_k v_k · (d_k / K), v_k drawn from `gen` in the order and with the accumulation
    order of forward_gradient: a different order would round differently and drift. With
    `groups`, `jvps` holds K scalars per group, in group order, as forward_gradient returns them."""
    groups = groups if groups is not None else [list(like)]
    if len(jvps) % len(groups):
        raise ValueError(f"{len(jvps)} scalars do not split into {len(groups)} groups")
    k_per = len(jvps) // len(groups)
    grad = {k: torch.zeros_like(p) for k, p in like.items()}
    for j, keys in enumerate(groups):
        for d in jvps[j * k_per:(j + 1) * k_per]:
            v = perturbations({k: like[k] for k in keys}, gen)
            for k in keys:
                grad[k].add_(v[k], alpha=float(d) / k_per)
    return grad


def replay_spry_steps(
    start: dict[str, torch.Tensor],
    jvps: list[list[float]],
    seed_parts: tuple,
    optimizer: str,
    lr: float,
    weight_decay: float,
    lr_overrides: dict[str, float] | None = None,
    groups: list[list[str]] | None = None,
) -> dict[str, torch.Tensor]:
    """The tensors spry_train ended at, rebuilt from the tensors it started from (`start`, in
    the same key order), its per-step jvps and its seed_parts.

    Matches to float tolerance, not bitwise, when the client ran on another device (the
    optimizer's arithmetic may round differently there; the perturbations do not differ).
    """
    leaves = {k: p.detach().clone() for k, p in start.items()}
    opt = make_optimizer(optimizer, leaves, lr, weight_decay, lr_overrides)
    with torch.no_grad():
        for step, step_jvps in enumerate(jvps):
            grad = regenerate_gradient(leaves, step_jvps, generator("cpu", *seed_parts, "step", step), groups)
            for k, p in leaves.items():
                p.grad = grad[k]
            opt.step()
            opt.zero_grad(set_to_none=True)
    return leaves


def uplink_bytes_tensors(tensors: dict[str, torch.Tensor]) -> int:
    """Bytes of the per-epoch uplink: every element as float32 (4 bytes), whatever the dtype.

    Payload only: tensor names, shapes and message framing are left out here as in
    uplink_bytes_seeds; the server knows each client's assignment anyway.
    """
    return FLOAT32_BYTES * sum(t.numel() for t in tensors.values())


def uplink_bytes_seeds(jvps: list[list[float]]) -> int:
    """Bytes of the seed-only uplink: per step, K float32 scalars plus an 8-byte header.

    The header stands for the seed/step identification; it is conservative, since the server
    already knows the round seed and can number the steps by their order. Payload only, as in
    uplink_bytes_tensors. Cost grows with the number of steps while the tensor uplink does not:
    the seed uplink is smaller only while steps · (8 + 4K) < 4 · (elements in the chunk).
    """
    return sum(STEP_HEADER_BYTES + FLOAT32_BYTES * len(step) for step in jvps)

"""Server-side math: per-tensor weighted averaging and the server optimizers (FedAvg/FedAdam/FedYogi)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


def aggregate_per_tensor(
    current: dict[str, torch.Tensor],
    updates: list[tuple[dict[str, torch.Tensor], float]],
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """w̄_i = Σ_{m trained i} n_m w_i^m / Σ n_m, per tensor; untrained tensors keep their value.

    `updates` holds (tensors a client trained, its example count). Returns the averaged
    tensors and, per tensor, how many clients trained it.
    """
    sums: dict[str, torch.Tensor] = {}
    weights: dict[str, float] = {}
    counts: dict[str, int] = {k: 0 for k in current}
    for tensors, n in updates:
        for k, w in tensors.items():
            if k not in current:
                raise KeyError(f"client returned unknown tensor {k!r}")
            w = w.to(current[k].dtype)
            sums[k] = sums[k] + n * w if k in sums else n * w
            weights[k] = weights.get(k, 0.0) + n
            counts[k] += 1
    out = {k: (sums[k] / weights[k] if k in sums and weights[k] > 0 else v.clone()) for k, v in current.items()}
    return out, counts


@dataclass
class ServerOptState:
    m: dict[str, torch.Tensor] = field(default_factory=dict)
    v: dict[str, torch.Tensor] = field(default_factory=dict)


def server_update(
    name: str,
    current: dict[str, torch.Tensor],
    averaged: dict[str, torch.Tensor],
    state: ServerOptState,
    lr: float = 1.0,
    beta1: float = 0.9,
    beta2: float = 0.99,
    tau: float = 1e-3,
    trained: set[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Apply the server optimizer to Δ = w̄ - w (Reddi et al. 2021, Adaptive Federated Optimization).

    fedavg: w + lr Δ (lr=1 is plain averaging). fedadam/fedyogi keep moments in `state`.
    Tensors outside `trained` (nobody trained them this round) stay unchanged, moments
    included: an adaptive optimizer would otherwise keep moving them on stale momentum.
    """
    out = {}
    for k, w in current.items():
        if trained is not None and k not in trained:
            out[k] = w
            continue
        delta = averaged[k] - w
        if name == "fedavg":
            out[k] = w + lr * delta
            continue
        m = state.m.get(k, torch.zeros_like(w))
        v = state.v.get(k, torch.zeros_like(w))
        m = beta1 * m + (1 - beta1) * delta
        d2 = delta * delta
        if name == "fedadam":
            v = beta2 * v + (1 - beta2) * d2
        elif name == "fedyogi":
            v = v - (1 - beta2) * d2 * torch.sign(v - d2)
        else:
            raise ValueError(f"unknown server optimizer {name!r}")
        state.m[k], state.v[k] = m, v
        out[k] = w + lr * m / (v.sqrt() + tau)
    return out

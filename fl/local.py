"""A client's local work on a model: Spry forward-gradient steps, backprop steps, prototypes.

Plain functions of (model, tensors, batches): no Flower or Ray here.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from core.seeding import derive_seed, generator
from fl.forward_grad import forward_gradient


def trim_padding(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Cut the columns that are padding in every row: short reviews then cost short passes.

    Padding is on the right and masked, so the logits are unchanged (mean pooling uses the mask).
    """
    if "attention_mask" not in batch:
        return batch
    length = int(batch["attention_mask"].sum(1).max())
    return {k: (v[:, :length] if v.dim() == 2 else v) for k, v in batch.items()}


def batches(
    data: dict[str, torch.Tensor], indices: np.ndarray, batch_size: int, seed: int
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless shuffled minibatches over `indices`; reshuffled each epoch from `seed`."""
    epoch = 0
    while True:
        order = np.random.default_rng(derive_seed(seed, "epoch", epoch)).permutation(indices)
        for i in range(0, len(order), batch_size):
            idx = torch.as_tensor(order[i : i + batch_size])
            yield trim_padding({k: v[idx] for k, v in data.items()})
        epoch += 1


def make_optimizer(
    name: str, params: dict[str, torch.Tensor], lr: float, weight_decay: float, lr_overrides: dict[str, float] | None = None
) -> torch.optim.Optimizer:
    """AdamW or SGD over `params`; tensors named in `lr_overrides` get their own learning rate."""
    lr_overrides = lr_overrides or {}
    groups = [{"params": [p for k, p in params.items() if k not in lr_overrides], "lr": lr}]
    groups += [{"params": [params[k]], "lr": v} for k, v in lr_overrides.items() if k in params]
    groups = [g for g in groups if g["params"]]
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(groups, lr=lr, weight_decay=weight_decay)


def classification_loss(model: torch.nn.Module, params: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
    logits = functional_call(model, params, (batch["input_ids"], batch["attention_mask"]))
    return F.cross_entropy(logits, batch["labels"])


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


Estimator = Callable[
    [Callable[[dict[str, torch.Tensor]], torch.Tensor], dict[str, torch.Tensor], torch.Generator],
    tuple[torch.Tensor, dict[str, torch.Tensor], list[float]],
]


def perturbation_train(
    model: torch.nn.Module,
    params: dict[str, torch.Tensor],
    batch_iter: Iterator[dict[str, torch.Tensor]],
    steps: int,
    estimate: Estimator,
    optimizer: str,
    lr: float,
    weight_decay: float,
    seed_parts: tuple,
    lr_overrides: dict[str, float] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, float], list[list[float]]]:
    """Train `params` with a perturbation-based gradient estimate (forward or zeroth order).

    Step s draws its perturbations from seed (seed_parts, "step", s) on a CPU generator, so
    the server can regenerate them on any device. Returns the trained tensors, metrics, and
    per step the K scalars (directional derivatives): with the seed, these are the whole
    update (fl.seed_replay), so a client may send them instead of the tensors. They are a
    separate value because metrics travel as a flat MetricRecord of numbers.
    """
    device = next(iter(params.values())).device
    leaves = {k: p.detach().clone() for k, p in params.items()}
    opt = make_optimizer(optimizer, leaves, lr, weight_decay, lr_overrides)
    losses: list[float] = []
    step_scalars: list[list[float]] = []
    t0 = time.perf_counter()
    with torch.no_grad():  # neither forward-mode AD nor finite differences need a graph
        for step in range(steps):
            batch = _to(next(batch_iter), device)
            gen = generator("cpu", *seed_parts, "step", step)
            loss, grad, scalars = estimate(lambda p: classification_loss(model, p, batch), leaves, gen)
            for k, p in leaves.items():
                p.grad = grad[k]
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss))
            step_scalars.append(scalars)
    return leaves, _metrics(losses, time.perf_counter() - t0), step_scalars


def spry_train(
    model: torch.nn.Module,
    params: dict[str, torch.Tensor],
    batch_iter: Iterator[dict[str, torch.Tensor]],
    steps: int,
    num_perturbations: int,
    optimizer: str,
    lr: float,
    weight_decay: float,
    seed_parts: tuple,
    lr_overrides: dict[str, float] | None = None,
    groups: list[list[str]] | None = None,
    jvp_impl: str = "fused",
) -> tuple[dict[str, torch.Tensor], dict[str, float], list[list[float]]]:
    """Spry's client: forward-gradient (jvp) training of this client's chunk; with `groups`,
    each group of tensors is perturbed and estimated on its own (fl.forward_grad, with the
    jvp implementation `jvp_impl`)."""
    return perturbation_train(
        model, params, batch_iter, steps,
        lambda f, p, g: forward_gradient(f, p, num_perturbations, g, groups, jvp_impl=jvp_impl),
        optimizer, lr, weight_decay, seed_parts, lr_overrides,
    )


def backprop_train(
    model: torch.nn.Module,
    params: dict[str, torch.Tensor],
    batch_iter: Iterator[dict[str, torch.Tensor]],
    steps: int,
    optimizer: str,
    lr: float,
    weight_decay: float,
    lr_overrides: dict[str, float] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Ordinary backprop on `params`: the baseline Spry is measured against."""
    device = next(iter(params.values())).device
    leaves = {k: p.detach().clone().requires_grad_(True) for k, p in params.items()}
    opt = make_optimizer(optimizer, leaves, lr, weight_decay, lr_overrides)
    losses = []
    t0 = time.perf_counter()
    for _ in range(steps):
        batch = _to(next(batch_iter), device)
        loss = classification_loss(model, leaves, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return {k: p.detach() for k, p in leaves.items()}, _metrics(losses, time.perf_counter() - t0)


def _metrics(losses: list[float], seconds: float) -> dict[str, float]:
    arr = np.asarray(losses, dtype=np.float64)
    return {
        "loss": float(arr.mean()) if len(arr) else float("nan"),
        "loss_first": float(arr[0]) if len(arr) else float("nan"),
        "loss_last": float(arr[-1]) if len(arr) else float("nan"),
        "steps": float(len(arr)),
        "train_time": seconds,
    }


@torch.no_grad()
def class_sums(
    model: torch.nn.Module, data: dict[str, torch.Tensor], indices: np.ndarray, num_labels: int, batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, the sum and count of the normalized sentence embeddings (for prototypes)."""
    device = next(model.parameters()).device
    sums = None
    counts = torch.zeros(num_labels, dtype=torch.float64)
    for i in range(0, len(indices), batch_size):
        idx = torch.as_tensor(indices[i : i + batch_size])
        b = trim_padding({k: v[idx] for k, v in data.items()})
        emb = model.embed(b["input_ids"].to(device), b["attention_mask"].to(device)).double().cpu()
        y = b["labels"]
        if sums is None:
            sums = torch.zeros(num_labels, emb.shape[1], dtype=torch.float64)
        sums.index_add_(0, y, emb)
        counts += torch.bincount(y, minlength=num_labels).double()
    assert sums is not None
    return sums, counts


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, data: dict[str, torch.Tensor], batch_size: int = 128
) -> dict[str, float]:
    device = next(model.parameters()).device
    correct, total, loss_sum = 0, 0, 0.0
    n = len(data["labels"])
    for i in range(0, n, batch_size):
        batch = _to(trim_padding({k: v[i : i + batch_size] for k, v in data.items()}), device)
        logits = model(batch["input_ids"], batch["attention_mask"])
        loss_sum += float(F.cross_entropy(logits, batch["labels"], reduction="sum"))
        correct += int((logits.argmax(-1) == batch["labels"]).sum())
        total += len(batch["labels"])
    return {"accuracy": correct / total, "loss": loss_sum / total}

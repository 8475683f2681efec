"""Basel's relearning loop: train the coefficients and new bases on target data while pruning.

A plain function of the model, its basis layers and the token blocks, run as one process or
as one data-parallel worker (rank of world): the Ray Train layer (compression.ray_train)
wraps the model in DDP or a DeepSpeed engine and calls it. Every worker prunes from the same
(all-reduced) coefficients at the same steps, so the masks agree without communication.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn as nn

from compression.bases import BasisLinear
from compression.data import lm_loss
from compression.prune import PruneSchedule, factorized_params, prune_to
from core.config import require
from core.seeding import generator
from core.train import optimizer_step_fn


@dataclass
class BaselConfig:
    new_bases: int = 8  # r: trainable rank-1 bases added per layer (the paper: 32)
    epochs: int = 1
    batch_size: int = 8  # blocks per worker step
    lr: float = 5e-3  # of the coefficients' square roots
    new_bases_lr: float = 1e-3
    prune_steps: int = 20  # progressive pruning calls (the paper: 100)
    warmup_fraction: float = 1 / 3  # no pruning in this share of the steps (the paper: 1 of 3 epochs)
    log_every: int = 10

    def validate(self) -> None:
        for key in ("epochs", "batch_size", "prune_steps", "log_every"):
            require(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        require(self.new_bases >= 0, "new_bases", f"must be >= 0, got {self.new_bases}")
        require(self.lr > 0 and self.new_bases_lr > 0, "lr", "learning rates must be > 0")


def steps_for(n_blocks: int, cfg: BaselConfig, world: int = 1) -> int:
    return cfg.epochs * (n_blocks // (cfg.batch_size * world))


def basis_state(layers: Mapping[str, BasisLinear]) -> dict[str, dict[str, torch.Tensor]]:
    """What relearning changes, per layer: coefficients, mask, new bases (U, V are re-derived)."""
    return {n: {"w": l.w.detach().cpu().clone(), "mask": l.mask.cpu().clone(), "A": l.A.detach().cpu().clone(),
                "B": l.B.detach().cpu().clone()} for n, l in layers.items()}


@torch.no_grad()
def load_basis_state(layers: Mapping[str, BasisLinear], state: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
    require(set(state) == set(layers), "state", "the saved basis layers do not match the model's")
    for n, layer in layers.items():
        layer.w.copy_(state[n]["w"])
        layer.mask.copy_(state[n]["mask"])
        layer.A.copy_(state[n]["A"])
        layer.B.copy_(state[n]["B"])


def make_optimizer(layers: Mapping[str, BasisLinear], cfg: BaselConfig, total_steps: int):
    coeff = [l.w for l in layers.values()]
    new = [p for l in layers.values() if l.new_bases for p in (l.A, l.B)]
    groups = [{"params": coeff, "lr": cfg.lr}] + ([{"params": new, "lr": cfg.new_bases_lr}] if new else [])
    opt = torch.optim.AdamW(groups, weight_decay=0.0)
    warm = max(1, int(0.03 * total_steps))

    def factor(step: int) -> float:  # linear warm-up over 3%, then cosine to 0 (the paper's schedule)
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def relearn(
    model: nn.Module,
    layers: Mapping[str, BasisLinear],
    blocks: torch.Tensor,
    cfg: BaselConfig,
    final_budget: int,
    *,
    seed: int = 0,
    rank: int = 0,
    world: int = 1,
    device: torch.device | str = "cpu",
    step_fn: Callable[[torch.Tensor], None] | None = None,
    on_log: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train (model may be DDP-wrapped; `layers` are its inner basis layers) and prune to
    `final_budget` parameters by the end. Returns the logged history (loss, params, step)."""
    total = steps_for(blocks.shape[0], cfg, world)
    schedule = PruneSchedule(total, cfg.prune_steps, factorized_params(layers), final_budget, cfg.warmup_fraction)
    plan = schedule.steps()
    if step_fn is None:
        step_fn = optimizer_step_fn(*make_optimizer(layers, cfg, total))
    per_epoch = total // cfg.epochs
    history, running, seen, step = [], 0.0, 0, 0
    model.train()
    for epoch in range(cfg.epochs):
        order = torch.randperm(blocks.shape[0], generator=generator("cpu", seed, "basel-epoch", epoch))
        mine = order[rank::world]
        for b in range(per_epoch):
            if step in plan:
                prune_to(layers, plan[step])
            batch = blocks[mine[b * cfg.batch_size : (b + 1) * cfg.batch_size]].to(device)
            loss = lm_loss(model, batch)
            step_fn(loss)
            running += float(loss)
            seen += 1
            step += 1
            if step % cfg.log_every == 0 or step == total:
                rec = {"step": step, "loss": running / seen, "params": factorized_params(layers)}
                history.append(rec)
                if on_log is not None:
                    on_log(rec)
                running, seen = 0.0, 0
    return history


__all__ = ["BaselConfig", "basis_state", "load_basis_state", "make_optimizer", "relearn", "steps_for"]

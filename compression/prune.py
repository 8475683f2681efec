"""Progressive basis pruning to a parameter budget (Basel, step 4).

Basel keeps, per layer, the shortest prefix of bases (by coefficient, largest first) whose
coefficients cover a share theta of the layer's coefficient sum. Here theta is common to all
layers and chosen so that the factorised layers fit a parameter budget: every basis needs
theta above the share covered by the larger bases of its layer, so taking bases in order of
that need, while they fit, is the common-theta rule, and it stops within one basis
(m + n parameters) of the budget. A schedule spreads `prune_steps` calls over training, the
budget shrinking geometrically from the current size to the target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from compression.bases import BasisLinear
from core.config import ConfigError, require


def dense_params(layers: Mapping[str, BasisLinear]) -> int:
    """Parameters of the original m x n weights of these layers."""
    return sum(layer.in_features * layer.out_features for layer in layers.values())


def factorized_params(layers: Mapping[str, BasisLinear]) -> int:
    return sum(layer.factorized_params() for layer in layers.values())


def budget_for(layers: Mapping[str, BasisLinear], keep_ratio: float) -> int:
    """The parameter budget of the factorised layers: keep_ratio of their dense parameters."""
    require(0.0 < keep_ratio <= 1.0, "keep_ratio", f"must be in (0, 1], got {keep_ratio}")
    return int(keep_ratio * dense_params(layers))


def plan_masks(layers: Mapping[str, BasisLinear], budget: int) -> dict[str, torch.Tensor]:
    """New masks: the common-theta selection of the still-unmasked bases that fits `budget`.

    Each layer keeps at least one basis (theta > 0 always takes it). Raises ConfigError if even
    that does not fit.
    """
    needs, owners, positions, costs = [], [], [], []
    order_of = {}
    for li, (name, layer) in enumerate(layers.items()):
        c = layer.coefficients.detach().to(torch.float64)
        alive = (layer.mask > 0).nonzero().squeeze(1)
        order = alive[torch.argsort(c[alive], descending=True, stable=True)]
        share = torch.cumsum(c[order], 0) / c[order].sum().clamp_min(1e-300)
        # basis j of the layer needs theta > share of the bases before it
        need = torch.cat([torch.zeros(1, dtype=torch.float64), share[:-1]])
        needs.append(need)
        owners.append(torch.full_like(order, li))
        positions.append(torch.arange(order.numel()))
        costs.append(torch.full((order.numel(),), layer.in_features + layer.out_features, dtype=torch.int64))
        order_of[name] = order
    need, owner = torch.cat(needs), torch.cat(owners)
    pos, cost = torch.cat(positions), torch.cat(costs)
    fixed = sum(layer.new_bases * (layer.in_features + layer.out_features) for layer in layers.values())
    minimum = fixed + sum(layer.in_features + layer.out_features for layer in layers.values())
    if budget < minimum:
        raise ConfigError("keep_ratio", f"a budget of {budget:,} parameters is below the {minimum:,} that one basis "
                                        "per layer plus the new bases need; raise keep_ratio or lower new_bases")
    # by need, then (on a tie) by layer and position, so every layer's selection stays a prefix
    idx = torch.from_numpy(np.lexsort((pos.numpy(), owner.numpy(), need.numpy())))
    # costs are positive, so what fits is a prefix of that order
    n_take = int((torch.cumsum(cost[idx], 0) <= budget - fixed).sum())
    take = torch.zeros(need.numel(), dtype=torch.bool)
    take[idx[:n_take]] = True
    masks, start = {}, 0
    for li, (name, layer) in enumerate(layers.items()):
        n_alive = order_of[name].numel()
        chosen = order_of[name][take[start : start + n_alive]]
        mask = torch.zeros_like(layer.mask)
        mask[chosen] = 1
        masks[name] = mask
        start += n_alive
    return masks


def prune_to(layers: Mapping[str, BasisLinear], budget: int) -> int:
    """Apply plan_masks in place; return the factorised parameter count reached."""
    for name, mask in plan_masks(layers, budget).items():
        layers[name].mask.copy_(mask)
    return factorized_params(layers)


@dataclass
class PruneSchedule:
    """When to prune during `total_steps` optimizer steps and to what budget.

    No pruning during the first `warmup_fraction` of the steps (the paper: the first of three
    epochs); then `prune_steps` calls at evenly spaced steps, the last one `final_budget`,
    with fine-tuning steps after each. Refuses a plan with fewer steps than calls (the
    reference code then divides by zero).
    """

    total_steps: int
    prune_steps: int
    start_params: int
    final_budget: int
    warmup_fraction: float = 1 / 3

    def __post_init__(self) -> None:
        require(self.prune_steps >= 1, "prune_steps", f"must be >= 1, got {self.prune_steps}")
        require(0.0 <= self.warmup_fraction < 1.0, "warmup_fraction", f"must be in [0, 1), got {self.warmup_fraction}")
        free = self.total_steps - int(self.warmup_fraction * self.total_steps)
        if free < self.prune_steps + 1:
            raise ConfigError("data", f"{self.total_steps} training steps leave {free} after the warm-up, fewer than "
                                      f"prune_steps + 1 = {self.prune_steps + 1} (a fine-tuning step after every "
                                      "prune); use more target data, more epochs, or fewer prune_steps")

    def steps(self) -> dict[int, int]:
        """{step index (0-based, prune before that step): budget}."""
        warm = int(self.warmup_fraction * self.total_steps)
        free = self.total_steps - warm
        out = {}
        for i in range(1, self.prune_steps + 1):
            step = warm + (i * free) // (self.prune_steps + 1)
            frac = i / self.prune_steps
            budget = self.start_params * (self.final_budget / self.start_params) ** frac
            out[step] = self.final_budget if i == self.prune_steps else int(round(budget))
        return out


__all__ = ["PruneSchedule", "budget_for", "dense_params", "factorized_params", "plan_masks", "prune_to"]

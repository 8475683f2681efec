"""First-order bi-level search (DARTS-style), alternating per step:
1. outer: alpha on a dev batch;
2. inner: the model and fusion weights on a train batch.
All gradients are cleared between the two, so the dev loss never reaches the weights' update
(in the reference code its gradients leaked into the inner step).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def bilevel_step(
    params: list[torch.nn.Parameter],
    loss_on: Callable[[dict], torch.Tensor],
    train_batch: dict,
    dev_batch: dict,
    opt_weights: torch.optim.Optimizer,
    opt_alpha: torch.optim.Optimizer,
) -> tuple[float, float]:
    """One alternating step; `params` are every trainable parameter (weights and alpha).

    Returns (dev loss before the alpha step, train loss before the weight step).
    """
    for p in params:
        p.grad = None
    dev_loss = loss_on(dev_batch)
    dev_loss.backward()
    opt_alpha.step()
    for p in params:  # the dev gradients on the weights are dropped here, not applied below
        p.grad = None
    train_loss = loss_on(train_batch)
    train_loss.backward()
    opt_weights.step()
    for p in params:
        p.grad = None
    return dev_loss.item(), train_loss.item()


__all__ = ["bilevel_step"]

"""Multi-label losses on logits: per-label weighted BCE (the meta-learner's training policy),
BCE with pos_weight, and focal loss. Each is summed over labels and averaged over examples."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def weighted_bce(logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """mean_x -sum_l w_l [y_l log p_l + (1 - y_l) log(1 - p_l)], p = sigmoid(logits); w = 1 without weights."""
    per = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    if weights is not None:
        per = per * weights
    return per.sum(-1).mean()


def pos_weight_bce(logits: torch.Tensor, y: torch.Tensor, pos_weight: torch.Tensor) -> torch.Tensor:
    """BCE whose positive term is scaled by pos_weight_l (torch's `pos_weight`)."""
    return F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight, reduction="none").sum(-1).mean()


def pos_weights(y_train: torch.Tensor, cap: float) -> torch.Tensor:
    """negatives / positives per label, capped (a label with one positive would get weight n)."""
    pos = y_train.sum(0)
    return ((y_train.shape[0] - pos) / pos.clamp_min(1.0)).clamp(max=cap)


def focal_loss(logits: torch.Tensor, y: torch.Tensor, gamma: float = 2.0, alpha: float | None = None) -> torch.Tensor:
    """Lin et al. (2017): -alpha_t (1 - p_t)^gamma log p_t per label; alpha None = no class balance."""
    ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * y + (1 - p) * (1 - y)
    loss = (1 - p_t).pow(gamma) * ce
    if alpha is not None:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return loss.sum(-1).mean()


__all__ = ["focal_loss", "pos_weight_bce", "pos_weights", "weighted_bce"]

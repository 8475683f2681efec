"""The base classifier: an MLP (or linear) multi-label head with one sigmoid per label over fixed
input features, trained with any loss on logits. Seeded: the same seed gives the same initial
weights and batch order, so two policies differ only by what they change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from core.config import require
from core.models import resolve_device

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class ClassifierConfig:
    hidden: int = 256  # 0 = a linear head
    dropout: float = 0.2
    epochs: int = 20
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    device: str = "cpu"

    def validate(self) -> None:
        require(self.hidden >= 0, "hidden", f"must be >= 0, got {self.hidden}")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        require(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        require(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")


def build_head(in_dim: int, num_labels: int, cfg: ClassifierConfig, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if cfg.hidden == 0:
            return nn.Linear(in_dim, num_labels)
        return nn.Sequential(nn.Linear(in_dim, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
                             nn.Linear(cfg.hidden, num_labels))


def train_classifier(x: np.ndarray, y: np.ndarray, loss_fn: LossFn, cfg: ClassifierConfig, seed: int) -> nn.Module:
    device = resolve_device(cfg.device)
    model = build_head(x.shape[1], y.shape[1], cfg, seed).to(device)
    xt, yt = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    with torch.random.fork_rng(devices=[]):  # dropout masks from the seed, not from global state
        torch.manual_seed(seed + 1)
        for _ in range(cfg.epochs):
            order = torch.randperm(len(xt), generator=gen).to(device)
            for i in range(0, len(order), cfg.batch_size):
                idx = order[i:i + cfg.batch_size]
                loss = loss_fn(model(xt[idx]), yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return model.eval()


@torch.no_grad()
def predict_proba(model: nn.Module, x: np.ndarray) -> np.ndarray:
    device = next(model.parameters()).device
    return torch.sigmoid(model(torch.as_tensor(x, device=device))).cpu().numpy()


__all__ = ["ClassifierConfig", "build_head", "predict_proba", "train_classifier"]

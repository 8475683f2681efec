"""The training loops as plain functions: dVAE tokenizer training, masked tabular image modelling
(MIM) and next-token fine-tuning (structure + boxes, or cell content). A loop takes its rank and
world size: each worker trains on its rank::world share of every epoch's seeded order, with the
per-sequence mean loss, so W workers at batch b step exactly as one process at batch W*b (DDP
averages the gradients). Ray Train runs them in tables.ray_train; tests run them in-process."""

from __future__ import annotations

import math
from collections.abc import Callable


import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.runs import progress
from core.seeding import derive_seed, generator
from tables.dvae import DVAE
from tables.masking import block_mask
from tables.model import EncoderDecoder, ModelConfig, PatchEncoder


class MIMModel(nn.Module):
    """Encoder + a linear head predicting each masked patch's dVAE code (BEiT)."""

    def __init__(self, cfg: ModelConfig, size: int, codebook: int):
        super().__init__()
        self.encoder = PatchEncoder(cfg, size, size)
        self.head = nn.Linear(cfg.d_model, codebook)

    def loss(self, images: torch.Tensor, codes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.encoder(images, mask))
        ce = F.cross_entropy(logits.transpose(1, 2), codes, reduction="none")
        m = mask.float()
        return ((ce * m).sum(1) / m.sum(1).clamp(min=1)).mean()

    forward = loss


def shard_order(n: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> np.ndarray:
    """This worker's share of epoch `epoch`'s seeded permutation (padded by repetition so every
    worker takes the same number of steps); the union of step t's batches is one contiguous chunk."""
    perm = np.random.default_rng(derive_seed(seed, "order", epoch)).permutation(n)
    steps = math.ceil(n / world)
    return np.resize(perm, steps * world)[rank::world]


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up, then cosine to zero (UniTable's schedule)."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def build_model(spec: dict) -> nn.Module:
    """The spec's model, its initial weights a function of the spec's seed only."""
    torch.manual_seed(derive_seed(spec["seed"], "build", spec["name"]))
    cfg = ModelConfig(**spec["model"])
    if spec["kind"] == "mim":
        model = MIMModel(cfg, spec["height"], spec["codebook"])
    else:
        model = EncoderDecoder(cfg, spec["height"], spec["width"], spec["vocab_size"], spec["max_len"],
                               coords=spec.get("coords"))
    if spec.get("encoder_state") is not None:
        model.encoder.load_state_dict(spec["encoder_state"])
    return model


def run_training(spec: dict, model: nn.Module, wrapped: nn.Module | None = None, *, rank: int = 0, world: int = 1,
                 device: torch.device | str = "cpu", start_epoch: int = 0, optimizer: torch.optim.Optimizer | None = None,
                 on_epoch: Callable[[int, dict, torch.optim.Optimizer], None] | None = None) -> list[dict]:
    """Train `model` (called through `wrapped`, e.g. its DDP wrapper) for spec['epochs'] epochs from
    start_epoch. spec['data'] holds numpy arrays: images [N, H, W] uint8 and tokens [N, L] (seq2seq),
    or images and codes [N, P] (mim). Returns one record per epoch."""
    wrapped = wrapped if wrapped is not None else model
    hp = spec["hp"]
    data = spec["data"]
    images = data["images"]
    n = len(data["index"]) if "index" in data else len(images)
    steps_per_epoch = math.ceil(math.ceil(n / world) / hp["batch_size"])
    total = steps_per_epoch * hp["epochs"]
    if optimizer is None:
        optimizer = make_optimizer(model, hp)
    history = []
    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, hp["epochs"]):
        model.train()
        order = shard_order(n, spec["seed"], epoch, rank, world)
        frozen = spec["kind"] != "mim" and epoch < hp.get("freeze_encoder_epochs", 0)
        losses = []
        bar = progress(range(steps_per_epoch), desc=f"{spec['name']} epoch {epoch + 1}/{hp['epochs']}") if rank == 0 \
            else range(steps_per_epoch)
        for t in bar:
            idx = order[t * hp["batch_size"]:(t + 1) * hp["batch_size"]]
            for g in optimizer.param_groups:
                g["lr"] = lr_at(step, total, hp["lr"], hp.get("warmup_steps", 0))
            loss = _batch_loss(spec, wrapped, idx, epoch, frozen, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if hp.get("clip", 0):
                nn.utils.clip_grad_norm_(model.parameters(), hp["clip"])
            optimizer.step()
            losses.append(float(loss.detach()))
            step += 1
        rec = {"name": spec["name"], "epoch": epoch + 1, "loss": float(np.mean(losses)), "frozen_encoder": frozen,
               "steps": step}
        history.append(rec)
        if on_epoch is not None:
            on_epoch(epoch, rec, optimizer)
    return history


def make_optimizer(model: nn.Module, hp: dict) -> torch.optim.Optimizer:
    """AdamW (UniTable's); hp['optimizer'] = 'sgd' gives plain SGD, whose step is linear in the
    gradient (Adam's first step is about lr * sign(g), which amplifies rounding where g ~ 0)."""
    if hp.get("optimizer", "adamw") == "sgd":
        return torch.optim.SGD(model.parameters(), lr=hp["lr"])
    return torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp.get("weight_decay", 0.0))


def _batch_loss(spec: dict, wrapped: nn.Module, idx: np.ndarray, epoch: int, frozen: bool, device) -> torch.Tensor:
    data = spec["data"]
    if spec["kind"] == "mim":
        images = torch.from_numpy(data["images"][idx]).to(device)
        codes = torch.from_numpy(data["codes"][idx]).long().to(device)
        hp = spec["hp"]
        grid = (spec["height"] // spec["model"]["patch"],) * 2
        masks = np.stack([block_mask(grid, hp["num_masked"], hp["min_block"], hp["min_aspect"],
                                     seed=derive_seed(spec["seed"], "mask", epoch, int(i))).ravel() for i in idx])
        return wrapped(images, codes, torch.from_numpy(masks).to(device))
    rows = data["index"][idx] if "index" in data else idx
    images = torch.from_numpy(data["images"][rows]).to(device)
    tokens = torch.from_numpy(data["tokens"][idx]).long().to(device)
    return wrapped(images, tokens, frozen)


def train_dvae(images: np.ndarray, codebook: int, hidden: int, patch: int, epochs: int, batch_size: int, lr: float,
               tau: tuple[float, float], kl_weight: float, seed: int, device: str = "cpu") -> tuple[DVAE, list[dict]]:
    """The visual tokenizer on the unlabelled images (one process: it is small)."""
    torch.manual_seed(derive_seed(seed, "build", "dvae"))
    model = DVAE(codebook, hidden, patch).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    gen = generator("cpu", seed, "gumbel")
    n = len(images)
    steps = math.ceil(n / batch_size)
    total, step, history = steps * epochs, 0, []
    for epoch in range(epochs):
        order = shard_order(n, derive_seed(seed, "dvae"), epoch)
        losses = []
        for t in progress(range(steps), desc=f"dVAE epoch {epoch + 1}/{epochs}"):
            tau_t = tau[0] * (tau[1] / tau[0]) ** (step / max(1, total - 1))  # exponential annealing
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, lr, 0)
            batch = torch.from_numpy(images[order[t * batch_size:(t + 1) * batch_size]]).to(device)
            loss = model.loss(batch, tau_t, kl_weight, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
        history.append({"name": "dvae", "epoch": epoch + 1, "loss": float(np.mean(losses)), "tau": tau_t})
    model.eval()
    return model, history


def dvae_codes(model: DVAE, images: np.ndarray, batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    out = [model.codes(torch.from_numpy(images[i:i + batch_size]).to(device)).cpu().numpy()
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out).astype(np.int16 if model.codebook < 32000 else np.int32)


def train_in_process(spec: dict, device: str = "cpu") -> tuple[nn.Module, list[dict]]:
    model = build_model(spec).to(device)
    return model, run_training(spec, model, device=device)


__all__ = ["MIMModel", "build_model", "dvae_codes", "lr_at", "make_optimizer", "run_training", "shard_order",
           "train_dvae", "train_in_process"]


"""The student: a small text classifier (core.models.TextClassifier) trained on generated data,
with cross-entropy or symmetric cross-entropy, and its logits, energies and accuracy."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from core.config import ConfigError
from core.models import TextClassifier, build_classifier, load_tokenizer, prototype_head
from core.seeding import derive_seed
from core.train import StepFn, optimizer_step_fn
from distill.config import StudentConfig
from distill.energy import energy_score


def symmetric_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, alpha: float, beta: float,
                            label_floor: float = 1e-4) -> torch.Tensor:
    """SCE = alpha * CE + beta * RCE (Wang et al. 2019), averaged over the batch.

    RCE = -sum_c p_c log q_c with q the one-hot label clamped to [label_floor, 1]: it reduces to
    -log(label_floor) * (1 - p_y), bounded, so a wrongly labelled sample cannot dominate the loss.
    """
    ce = F.cross_entropy(logits.float(), labels)
    p_y = logits.float().softmax(-1).gather(-1, labels[:, None]).squeeze(-1)
    rce = (-math.log(label_floor) * (1.0 - p_y)).mean()
    return alpha * ce + beta * rce


def student_loss(logits: torch.Tensor, labels: torch.Tensor, cfg: StudentConfig) -> torch.Tensor:
    if cfg.loss == "sce":
        return symmetric_cross_entropy(logits, labels, cfg.sce_alpha, cfg.sce_beta)
    return F.cross_entropy(logits.float(), labels)


def epoch_order(n: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> np.ndarray:
    """The sample indices one of `world` data-parallel workers trains on in `epoch`, in order.

    One permutation per (seed, epoch), the same on every worker, padded with its own start to a
    multiple of world (as torch's DistributedSampler does) and dealt out rank::world: every worker
    takes the same number of steps, which DDP's all-reduce needs, and world=1 is the permutation.
    """
    order = np.random.default_rng(derive_seed(seed, "epoch", epoch)).permutation(n)
    order = np.resize(order, n + (-n % world))  # np.resize repeats from the start
    return order[rank::world]


def check_student_labels(model: TextClassifier, label_names: Sequence[str]) -> None:
    """The student's outputs must be the task's labels, one logit each."""
    width = model.head.out_features
    if width != len(label_names):
        raise ConfigError("student", f"the student has {width} outputs but the task has {len(label_names)} labels "
                                     f"{list(label_names)}; build it with num_labels={len(label_names)}")


class Student:
    """A TextClassifier with its tokenizer and training recipe. Training continues the same
    weights across calls (GOLD's student is not re-initialised between iterations)."""

    def __init__(self, model: TextClassifier, tokenizer, cfg: StudentConfig, label_names: Sequence[str]):
        check_student_labels(model, label_names)
        self.model = model
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.label_names = list(label_names)
        self.steps = 0  # optimizer steps taken so far
        self.head_initialized = False

    @classmethod
    def build(cls, cfg: StudentConfig, label_names: Sequence[str], seed: int) -> Student:
        model = build_classifier(cfg.model, cfg.adapter, len(label_names), seed=derive_seed(seed, "student"))
        return cls(model, load_tokenizer(cfg.model.name), cfg, label_names)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.cfg.model.max_length,
                             return_tensors="pt")
        return {"input_ids": enc["input_ids"].to(self.device), "attention_mask": enc["attention_mask"].to(self.device)}

    def optimizer(self) -> torch.optim.Optimizer:
        """A fresh AdamW over the trainable tensors (each train() call starts one)."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def batch_loss(self, texts: Sequence[str], labels: torch.Tensor, model: torch.nn.Module | None = None) -> torch.Tensor:
        """The training loss (cfg.loss) of one batch. `model` is self.model or a wrapper around it
        (DDP, a DeepSpeed engine) whose forward takes part in syncing the gradients."""
        batch = self._encode(texts)
        logits = (self.model if model is None else model)(batch["input_ids"], batch["attention_mask"])
        return student_loss(logits, labels.to(self.device), self.cfg)

    @torch.no_grad()
    def init_head(self, texts: Sequence[str], labels: Sequence[int] | np.ndarray) -> None:
        """Set the head to head_scale * the normalized class means of the texts' embeddings: a
        cosine nearest-centroid classifier to start from. The head reads a unit-norm embedding,
        so a random head moves too little in a few hundred steps and the student stays at one class."""
        y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        head = self.model.head
        sums = torch.zeros(head.out_features, head.in_features, dtype=torch.float64)
        for lo in range(0, len(texts), self.cfg.eval_batch_size):
            batch = self._encode(texts[lo:lo + self.cfg.eval_batch_size])
            emb = self.model.embed(batch["input_ids"], batch["attention_mask"]).double().cpu()
            sums.index_add_(0, y[lo:lo + self.cfg.eval_batch_size], emb)
        weight, bias = prototype_head(sums, torch.bincount(y, minlength=head.out_features).double(), self.cfg.head_scale)
        head.weight.copy_(weight.to(head.weight))
        head.bias.copy_(bias.to(head.bias))
        self.head_initialized = True

    def train(self, texts: Sequence[str], labels: Sequence[int] | np.ndarray, epochs: int, seed: int, *,
              rank: int = 0, world: int = 1, model: torch.nn.Module | None = None,
              step_fn: StepFn | None = None) -> dict[str, float]:
        """`epochs` shuffled passes over (texts, labels), AdamW; returns the last epoch's mean loss.

        The model stays in eval mode: with dropout off, the seed alone fixes the result (dropout
        would draw from torch's global RNG). As one of `world` data-parallel workers (distill.ray_train)
        it takes its share of each epoch's order (epoch_order), calls forward through `model` (the
        DDP or DeepSpeed wrapper) and steps with `step_fn`; the defaults are the in-process run.
        """
        labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if len(texts) != labels_t.numel():
            raise ValueError(f"{len(texts)} texts for {labels_t.numel()} labels")
        if len(texts) == 0:
            raise ValueError("no training samples")
        bad = labels_t[(labels_t < 0) | (labels_t >= len(self.label_names))]
        if bad.numel():
            raise ConfigError("task.label_names", f"label {int(bad[0])} is not one of the task's "
                                                  f"{len(self.label_names)} labels {self.label_names}")
        if self.cfg.head_init == "prototype" and not self.head_initialized:
            if model is not None and model is not self.model:
                # a wrapper (DeepSpeed) may hold its own copy of the weights: set the head before wrapping
                raise RuntimeError("call init_head before wrapping the student's model")
            self.init_head(texts, labels_t)
        if step_fn is None:
            step_fn = optimizer_step_fn(self.optimizer())
        bs = self.cfg.batch_size
        last: list[float] = []
        for epoch in range(epochs):
            order = epoch_order(len(texts), seed, epoch, rank, world)
            last = []
            for lo in range(0, len(order), bs):
                idx = order[lo:lo + bs]
                loss = self.batch_loss([texts[i] for i in idx], labels_t[idx], model)
                step_fn(loss)
                self.steps += 1
                last.append(loss.item())
        return {"train_loss": float(np.mean(last)), "train_samples": float(len(texts))}

    @torch.no_grad()
    def logits(self, texts: Sequence[str]) -> torch.Tensor:
        """(len(texts), num_labels) logits on the CPU."""
        out = [torch.empty(0, len(self.label_names))]
        for lo in range(0, len(texts), self.cfg.eval_batch_size):
            batch = self._encode(texts[lo:lo + self.cfg.eval_batch_size])
            out.append(self.model(batch["input_ids"], batch["attention_mask"]).float().cpu())
        return torch.cat(out)

    def energies(self, texts: Sequence[str], temperature: float = 1.0) -> torch.Tensor:
        return energy_score(self.logits(texts), temperature)

    def evaluate(self, texts: Sequence[str], labels: Sequence[int] | np.ndarray) -> dict[str, float]:
        """Accuracy and mean cross-entropy on labelled texts."""
        logits = self.logits(texts)
        y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        return {"accuracy": float((logits.argmax(-1) == y).float().mean()),
                "loss": float(F.cross_entropy(logits, y))}

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().cpu().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        own = {n: p for n, p in self.model.named_parameters() if p.requires_grad}
        if set(own) != set(state):
            raise ValueError(f"the saved student tensors do not match this student's: "
                             f"{sorted(set(own) ^ set(state))[:5]}")
        with torch.no_grad():
            for n, p in own.items():
                p.copy_(state[n].to(p.device))
        self.head_initialized = True  # the head is the saved one

"""Training and measuring the ReFusion arms: plain fine-tuning with fixed fusion choices, the
bi-level search of the per-module choices, accuracy, latency and FLOPs per example."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F

from core.config import require
from core.models import prototype_head
from core.seeding import generator
from core.timing import timed_in_turns
from retrieval.bilevel import bilevel_step
from retrieval.model import Batchable, RetrievalClassifier


@dataclass
class FitConfig:
    # Weight updates of every arm. The searched arm spends search_steps of them inside the
    # bi-level search (each search step also updates the weights, on a train batch) and the rest
    # after fixing its choices, so that no arm is compared after more training than another.
    steps: int = 120
    search_steps: int = 60  # alternating alpha/weight steps of the bi-level search
    batch_size: int = 16
    lr: float = 3e-5  # backbone
    head_lr: float = 1e-3  # the linear head
    # "prototype": the head starts as a cosine nearest-centroid classifier of the training
    # examples (scale * normalized class means). It reads a unit-norm embedding, so a random head
    # at these learning rates stays near zero and the few-shot model never leaves the majority class.
    head_init: Literal["prototype", "random"] = "prototype"
    head_scale: float = 20.0  # logits are head_scale * cosine: a softmax temperature
    fusion_lr: float = 1e-3  # rerankers, ordered masks, gains, projection
    # Each module's fused vector starts at this fraction of the mean norm of the CLS key/value
    # output it is added to (RetrievalIntegrator.calibrate_gains); 0 keeps the gain at 1, the
    # paper's raw addition, which suits retrievals already on the backbone's scale (README, ReFusion).
    fusion_scale: float = 0.3
    alpha_lr: float = 3e-3
    weight_decay: float = 1e-4
    eval_every: int = 20  # steps between dev evaluations (a Tune report each)

    def validate(self) -> None:
        for key in ("steps", "batch_size", "eval_every"):
            require(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        require(self.head_scale > 0, "head_scale", f"must be > 0, got {self.head_scale}")
        require(0 <= self.search_steps < self.steps, "search_steps",
                f"must be in [0, steps={self.steps}): the search's steps are part of the arm's {self.steps} "
                f"weight updates and at least one comes after it; got {self.search_steps}")
        require(self.fusion_scale >= 0, "fusion_scale", f"must be >= 0, got {self.fusion_scale}")


def loss_of(model: RetrievalClassifier, b: Batchable) -> torch.Tensor:
    return F.cross_entropy(model(b.input_ids, b.attention_mask, b.z), b.labels)


def _weight_optimizer(model: RetrievalClassifier, cfg: FitConfig) -> torch.optim.Optimizer:
    fusion = {id(p) for p in model.integrator.fusion_parameters()}
    head = {id(p) for p in model.classifier.head.parameters()}
    weights = model.weight_parameters()
    return torch.optim.AdamW([
        {"params": [p for p in weights if id(p) not in fusion and id(p) not in head], "lr": cfg.lr},
        {"params": [p for p in weights if id(p) in head], "lr": cfg.head_lr},
        {"params": [p for p in weights if id(p) in fusion], "lr": cfg.fusion_lr},
    ], weight_decay=cfg.weight_decay)


@torch.no_grad()
def init_head(model: RetrievalClassifier, train: Batchable, scale: float, batch_size: int = 64) -> None:
    """Set the head from the class means of the training embeddings (with the model's current fusion)."""
    model.eval()
    num_labels = model.classifier.head.out_features
    sums = torch.zeros(num_labels, model.classifier.head.in_features, dtype=torch.float64)
    for s in range(0, len(train), batch_size):
        b = train.take(torch.arange(s, min(s + batch_size, len(train))))
        model.integrator.set_retrievals(b.z)
        sums.index_add_(0, b.labels, model.classifier.embed(b.input_ids, b.attention_mask).double())
    counts = torch.bincount(train.labels, minlength=num_labels).double()
    weight, bias = prototype_head(sums, counts, scale)
    model.classifier.head.weight.copy_(weight)
    model.classifier.head.bias.copy_(bias)


@torch.no_grad()
def calibrate_gains(model: RetrievalClassifier, train: Batchable, scale: float) -> dict[str, float]:
    """Set the fusion gains from the training examples (see RetrievalIntegrator.calibrate_gains)."""
    model.eval()
    model.integrator.set_retrievals(train.z)
    return model.integrator.calibrate_gains(lambda: model.classifier(train.input_ids, train.attention_mask), scale)


def _batches(n: int, batch_size: int, seed: int, role: str):
    epoch = 0
    while True:
        order = torch.randperm(n, generator=generator("cpu", seed, role, epoch))
        for s in range(0, n - min(batch_size, n) + 1, min(batch_size, n)):
            yield order[s : s + batch_size]
        epoch += 1


def fit(model: RetrievalClassifier, train: Batchable, cfg: FitConfig, seed: int,
        dev: Batchable | None = None, on_eval: Callable[[int, float, RetrievalClassifier], None] | None = None) -> list[dict]:
    """Fine-tune with the integrator's current (fixed) choices; evaluate dev every eval_every steps."""
    opt = _weight_optimizer(model, cfg)
    history = []
    batches = _batches(len(train), cfg.batch_size, seed, "fit")
    for step in range(1, cfg.steps + 1):
        model.train()
        loss = loss_of(model, train.take(next(batches)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if dev is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
            acc = accuracy(model, dev)
            history.append({"step": step, "loss": loss.item(), "dev_accuracy": acc})
            if on_eval is not None:
                on_eval(step, acc, model)
    return history


def search(model: RetrievalClassifier, train: Batchable, dev: Batchable, cfg: FitConfig, seed: int,
           train_alpha: bool = True) -> dict[str, str]:
    """Bi-level search of the per-module candidates (alpha on dev, weights on train), then keep
    each module's argmax. Returns the chosen candidates.

    train_alpha=False is ReFusion as released: alpha stays frozen, so the search steps only train
    the weights of the fixed softmax(alpha) mix on train batches, and the argmax is alpha's init."""
    alphas = model.integrator.arch_parameters()
    if not train_alpha:
        opt_w = _weight_optimizer(model, cfg)
        tb = _batches(len(train), cfg.batch_size, seed, "search-train")
        model.train()
        for _ in range(cfg.search_steps):
            loss = loss_of(model, train.take(next(tb)))
            opt_w.zero_grad(set_to_none=True)
            loss.backward()
            opt_w.step()
        return model.integrator.discretize()
    for a in alphas:
        a.requires_grad_(True)
    opt_w = _weight_optimizer(model, cfg)
    opt_a = torch.optim.AdamW(alphas, lr=cfg.alpha_lr, weight_decay=0.0)
    params = [*model.weight_parameters(), *alphas]
    tb, db = _batches(len(train), cfg.batch_size, seed, "search-train"), _batches(len(dev), cfg.batch_size, seed, "search-dev")
    model.train()
    for _ in range(cfg.search_steps):
        bilevel_step(params, lambda b: loss_of(model, b), train.take(next(tb)), dev.take(next(db)), opt_w, opt_a)
    return model.integrator.discretize()


def train_arm(model: RetrievalClassifier, train: Batchable, dev: Batchable, cfg: FitConfig, seed: int,
              searched: bool, on_eval: Callable[[int, float, RetrievalClassifier], None] | None = None,
              train_alpha: bool = True) -> list[dict]:
    """cfg.steps weight updates in all: for the searched arms, cfg.search_steps of them in the
    bi-level search (alpha frozen with train_alpha=False) and the rest with the chosen
    candidates; for the others, plain fine-tuning."""
    if not searched:
        return fit(model, train, cfg, seed, dev=dev, on_eval=on_eval)
    search(model, train, dev, cfg, seed, train_alpha=train_alpha)
    return fit(model, train, replace(cfg, steps=cfg.steps - cfg.search_steps), seed, dev=dev, on_eval=on_eval)


@torch.no_grad()
def predict(model: RetrievalClassifier, data: Batchable, batch_size: int = 64) -> torch.Tensor:
    model.eval()
    out = [model(b.input_ids, b.attention_mask, b.z).argmax(-1)
           for b in (data.take(torch.arange(s, min(s + batch_size, len(data)))) for s in range(0, len(data), batch_size))]
    return torch.cat(out)


def accuracy(model: RetrievalClassifier, data: Batchable) -> float:
    return float((predict(model, data) == data.labels).float().mean())


@torch.no_grad()
def latencies_in_turns(models: dict[str, RetrievalClassifier], data: dict[str, Batchable], batch_size: int = 32,
                       rounds: int = 5) -> dict[str, list[float]]:
    """Seconds per example of batched inference, each model on its own encoding of the data,
    the models timed in turns (core.timing) so that per-round ratios cancel the CPU's drift."""
    calls, sizes = {}, {}
    for name, model in models.items():
        model.eval()
        b = data[name].take(torch.arange(min(batch_size, len(data[name]))))
        calls[name] = lambda model=model, b=b: model(b.input_ids, b.attention_mask, b.z)
        sizes[name] = len(b)
    return {name: [t / sizes[name] for t in ts] for name, ts in timed_in_turns(calls, rounds).items()}


@torch.no_grad()
def flops_per_example(model: RetrievalClassifier, data: Batchable) -> float:
    """FLOPs of one example's forward pass, counted by torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    b = data.take(torch.arange(1))
    counter = FlopCounterMode(display=False)
    with counter:
        model(b.input_ids, b.attention_mask, b.z)
    return float(counter.get_total_flops())


__all__ = ["FitConfig", "accuracy", "calibrate_gains", "fit", "flops_per_example", "init_head", "latencies_in_turns", "loss_of", "predict", "search", "train_arm"]

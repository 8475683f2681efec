"""The tiny model and random batches the fl unit tests share (seeded, so values repeat)."""

import torch

from core.models import AdapterConfig, ModelConfig, build_classifier, trainable_state
from core.seeding import generator


def tiny_model():
    """A random 2-layer BERT with LoRA r=2 and a 2-class head: (model, trainable tensors).
    The module's own parameters are frozen; tests pass trainable tensors to functional_call."""
    model = build_classifier(ModelConfig(name="tiny-bert"), AdapterConfig(r=2), 2, seed=0)
    params = trainable_state(model)
    model.requires_grad_(False)
    return model, params


def random_batches(n: int, role: str = "batches", batch: int = 8, seq: int = 16) -> list[dict[str, torch.Tensor]]:
    g = generator("cpu", role)
    return [{"input_ids": torch.randint(1000, 3000, (batch, seq), generator=g),
             "attention_mask": torch.ones(batch, seq, dtype=torch.long),
             "labels": torch.randint(0, 2, (batch,), generator=g)} for _ in range(n)]

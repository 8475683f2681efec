"""A sentence classifier whose key/value projections can fuse retrieved representations, and the
tensors it trains on (tokenized texts, their retrieved neighbours' embeddings, labels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from core.models import ModelConfig, TextClassifier, load_backbone, load_tokenizer
from retrieval.integrator import Choice, RetrievalIntegrator


@dataclass
class Batchable:
    input_ids: torch.Tensor  # n x L
    attention_mask: torch.Tensor
    z: torch.Tensor | None  # n x k x D: embeddings of each example's neighbours, best first
    labels: torch.Tensor  # n

    def __len__(self) -> int:
        return self.labels.shape[0]

    def take(self, idx: torch.Tensor) -> "Batchable":
        return Batchable(self.input_ids[idx], self.attention_mask[idx], None if self.z is None else self.z[idx],
                         self.labels[idx])


def encode(texts: list[str], labels: np.ndarray, tokenizer, max_length: int,
           z: np.ndarray | None = None) -> Batchable:
    enc = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    return Batchable(enc["input_ids"], enc["attention_mask"], None if z is None else torch.from_numpy(z).float(),
                     torch.as_tensor(labels, dtype=torch.int64))


def concatenated(texts: list[str], neighbours: np.ndarray, sentences: list[str]) -> list[str]:
    """The concatenation baseline's inputs: each text followed by its retrieved sentences, best first."""
    return [t + " " + " ".join(sentences[j] for j in row) for t, row in zip(texts, neighbours)]


class RetrievalClassifier(nn.Module):
    """TextClassifier (mean-pooled, normalised embedding -> linear head) over a backbone whose
    key/value projections are wrapped by a RetrievalIntegrator."""

    def __init__(self, model_cfg: ModelConfig, num_labels: int, k: int, retrieval_dim: int,
                 choice: Choice = "search", seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)  # the head's initialisation, per seed
        backbone = load_backbone(model_cfg, seed)
        backbone.requires_grad_(True)  # fine-tuned, as the paper's backbone is
        self.integrator = RetrievalIntegrator(backbone, k, retrieval_dim, choice, seed=seed)
        self.classifier = TextClassifier(backbone, num_labels, model_cfg.pooling)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        self.integrator.set_retrievals(z)
        return self.classifier(input_ids, attention_mask)

    def weight_parameters(self) -> list[nn.Parameter]:
        alphas = {id(a) for a in self.integrator.arch_parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in alphas]


def tokenizer_for(model_cfg: ModelConfig):
    return load_tokenizer(model_cfg.name)


__all__ = ["Batchable", "RetrievalClassifier", "concatenated", "encode", "tokenizer_for"]

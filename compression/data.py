"""Language-modelling data for compression: texts -> fixed-length token blocks, and perplexity.

Texts are tokenized, joined with the end-of-sequence token and cut into `seq_len` blocks
(no padding, so every position is a real next-token target), as in causal-LM pretraining.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.config import require


def token_blocks(texts: list[str], tokenizer, seq_len: int, max_blocks: int | None = None) -> torch.Tensor:
    """A (blocks x seq_len) int64 tensor of consecutive tokens of the joined texts."""
    require(seq_len >= 2, "seq_len", f"must be >= 2, got {seq_len}")
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    ids: list[int] = []
    need = None if max_blocks is None else max_blocks * seq_len
    for t in texts:
        ids += tokenizer(t, add_special_tokens=False)["input_ids"]
        if eos is not None:
            ids.append(eos)
        if need is not None and len(ids) >= need:
            break
    n = len(ids) // seq_len
    if max_blocks is not None:
        n = min(n, max_blocks)
    return torch.tensor(ids[: n * seq_len], dtype=torch.int64).view(n, seq_len)


def lm_loss(model: nn.Module, blocks: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over a batch of blocks."""
    logits = model(input_ids=blocks).logits[:, :-1]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), blocks[:, 1:].reshape(-1))


@torch.no_grad()
def perplexity(model: nn.Module, blocks: torch.Tensor, batch_size: int = 8) -> float:
    """exp of the mean next-token loss over all blocks (each batch weighted by its tokens)."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for s in range(0, blocks.shape[0], batch_size):
        b = blocks[s : s + batch_size].to(device)
        total += float(lm_loss(model, b)) * b.shape[0]
        count += b.shape[0]
    return math.exp(total / max(count, 1))


__all__ = ["lm_loss", "perplexity", "token_blocks"]

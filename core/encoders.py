"""Sentence embeddings from any encoder core.models loads: mean-pooled, L2-normalised last hidden
states (what sentence-transformers encoders such as all-MiniLM-L6-v2 are trained for)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.models import ModelConfig, load_backbone, load_tokenizer, pool, resolve_device


class Embedder:
    """Callable on a batch {"text": array of str, ...} -> the batch plus "embedding" (float32).

    A class so that Ray Data builds it once per actor (the model load) and calls it per batch.
    """

    def __init__(self, model: str = "minilm", max_length: int = 128, device: str = "auto", seed: int = 0):
        cfg = ModelConfig(name=model, max_length=max_length, device=device, attn_implementation="sdpa"
                          if model not in ("tiny-bert", "tiny-llama") else "eager")
        self.device = resolve_device(device)
        # Ray sets OMP_NUM_THREADS to the actor's CPUs; torch's pool follows it.
        self.tokenizer = load_tokenizer(model)
        self.model = load_backbone(cfg, seed).to(self.device)
        self.max_length = max_length

    @torch.inference_mode()
    def embed(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt").to(self.device)
        hidden = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        return F.normalize(pool(hidden, enc["attention_mask"], "mean").float(), dim=-1).cpu().numpy()

    def embed_all(self, texts: list[str], batch_size: int, desc: str | None = None) -> np.ndarray:
        """Every text's embedding (n x D float32), in batches of `batch_size`; with `desc`, a
        progress bar (core.runs.progress)."""
        starts = range(0, len(texts), batch_size)
        if desc is not None:
            from core.runs import progress

            starts = progress(starts, desc=desc)
        return np.concatenate([self.embed(texts[s: s + batch_size]) for s in starts]).astype(np.float32)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        batch["embedding"] = self.embed([str(t) for t in batch["text"]])
        return batch



def embed_dataset(ds: Any, model: str, max_length: int, batch_size: int, concurrency: int,
                  num_cpus: float = 1, num_gpus: float = 0, device: str = "auto") -> Any:
    """The Ray Dataset `ds` (with a "text" column) plus an "embedding" column, computed by
    `concurrency` model-holding actors with `num_cpus` and `num_gpus` each."""
    from ray.data import ActorPoolStrategy

    return ds.map_batches(Embedder, fn_constructor_kwargs={"model": model, "max_length": max_length, "device": device},
                          batch_size=batch_size, compute=ActorPoolStrategy(size=concurrency), num_cpus=num_cpus,
                          num_gpus=num_gpus, batch_format="numpy")


__all__ = ["Embedder", "embed_dataset"]

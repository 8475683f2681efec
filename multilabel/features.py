"""Inputs for the classifier: TF-IDF vectors fit on the training split (fast runs), or frozen
sentence embeddings from any encoder core.encoders loads (MiniLM by default), cached on disk."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.config import require
from core.models import check_model_name

log = logging.getLogger("tailor.multilabel")


@dataclass
class FeaturesConfig:
    kind: Literal["tfidf", "frozen"] = "tfidf"
    max_features: int = 5000  # tfidf vocabulary (most frequent terms in train)
    min_df: int = 2
    model: str = "minilm"  # frozen: a short name, HF id or local path
    max_length: int = 128
    batch_size: int = 64
    device: str = "auto"
    cache: bool = True  # frozen: keep embeddings under $TAILOR_CACHE/multilabel

    def validate(self) -> None:
        require(self.max_features >= 10, "max_features", f"must be >= 10, got {self.max_features}")
        require(self.min_df >= 1, "min_df", f"must be >= 1, got {self.min_df}")
        require(self.max_length > 0, "max_length", f"must be > 0, got {self.max_length}")
        require(self.batch_size > 0, "batch_size", f"must be > 0, got {self.batch_size}")
        if self.kind == "frozen":
            check_model_name(self.model, key="model")


def tfidf_features(texts: dict[str, list[str]], cfg: FeaturesConfig) -> dict[str, np.ndarray]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(max_features=cfg.max_features, min_df=cfg.min_df, sublinear_tf=True,
                          stop_words="english", dtype=np.float32)
    vec.fit(texts["train"])
    return {k: vec.transform(v).toarray() for k, v in texts.items()}


def frozen_features(texts: dict[str, list[str]], cfg: FeaturesConfig) -> dict[str, np.ndarray]:
    from core.encoders import Embedder
    from core.models import cache_dir
    from core.runs import atomic_write

    out, embedder = {}, None
    for split, items in texts.items():
        key = hashlib.sha1(("\x00".join(items) + f"|{cfg.model}|{cfg.max_length}").encode()).hexdigest()[:20]
        path = cache_dir() / "multilabel" / f"{key}.npy"
        if cfg.cache and path.is_file():
            out[split] = np.load(path)
            continue
        if embedder is None:
            embedder = Embedder(cfg.model, cfg.max_length, cfg.device)
        out[split] = embedder.embed_all(items, cfg.batch_size, desc=f"embed {split}")
        if cfg.cache:
            import io

            buf = io.BytesIO()
            np.save(buf, out[split])
            atomic_write(path, buf.getvalue())
    return out


def build_features(texts: dict[str, list[str]], cfg: FeaturesConfig) -> dict[str, np.ndarray]:
    return tfidf_features(texts, cfg) if cfg.kind == "tfidf" else frozen_features(texts, cfg)


__all__ = ["FeaturesConfig", "build_features", "frozen_features", "tfidf_features"]

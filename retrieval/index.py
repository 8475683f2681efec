"""The retrieval datastore: a FAISS index over unit sentence embeddings, and the per-example
neighbour cache.

Inner product on unit vectors ranks as L2 does (||a - b||^2 = 2 - 2 a.b). "flat" is exact;
"ivfpq" (IVF lists + product quantisation, from config) is for corpora too large to scan.
Neighbours are computed once per dataset and saved with a fingerprint of what they depend on
(the dataset's texts, the corpus, the encoder, k), so a stale cache is refused, not used.

faiss-cpu's bundled OpenBLAS picks a slow kernel on CPUs it does not recognise; on such a
machine set OPENBLAS_CORETYPE (e.g. SkylakeX on AVX-512 Xeons) before starting.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from core.config import ConfigError, require
from core.runs import atomic_write


@dataclass
class IndexConfig:
    kind: Literal["flat", "ivfpq"] = "flat"
    nlist: int = 256  # IVF lists
    pq_m: int = 16  # PQ sub-quantisers (must divide the dimension)
    pq_bits: int = 8
    nprobe: int = 16

    def validate(self) -> None:
        for key in ("nlist", "pq_m", "pq_bits", "nprobe"):
            require(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")


def build_index(embeddings: np.ndarray, cfg: IndexConfig, seed: int = 0):
    import faiss

    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    require(x.ndim == 2 and x.shape[0] > 0, "corpus", f"the corpus has no embeddings (shape {x.shape})")
    d = x.shape[1]
    if cfg.kind == "flat":
        index = faiss.IndexFlatIP(d)
    else:
        require(d % cfg.pq_m == 0, "index.pq_m", f"must divide the embedding dimension {d}, got {cfg.pq_m}")
        require(x.shape[0] >= cfg.nlist * 39 // 10, "index.nlist",
                f"{cfg.nlist} lists need at least {cfg.nlist * 39 // 10} corpus rows to train, got {x.shape[0]}")
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, cfg.nlist, cfg.pq_m, cfg.pq_bits, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(x)
        index.nprobe = cfg.nprobe
    index.add(x)
    return index


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the k nearest corpus rows of each query, best first."""
    require(1 <= k <= index.ntotal, "k", f"k={k} is above the corpus size {index.ntotal}" if k > index.ntotal
            else f"must be >= 1, got {k}")
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def save_index(index, path: str | Path) -> Path:
    import faiss

    return atomic_write(path, faiss.serialize_index(index).tobytes())


def load_index(path: str | Path):
    import faiss

    p = Path(path)
    if not p.is_file():
        raise ConfigError("index", f"file not found: {p}")
    return faiss.deserialize_index(np.frombuffer(p.read_bytes(), dtype=np.uint8))


def fingerprint(texts: list[str], **parts: object) -> str:
    h = hashlib.sha1()
    for t in texts:
        h.update(t.encode("utf-8", "replace"))
        h.update(b"\0")
    h.update(json.dumps(parts, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def save_neighbours(path: str | Path, ids: np.ndarray, fp: str) -> Path:
    buf = io.BytesIO()
    np.savez(buf, ids=ids.astype(np.int64), fingerprint=np.array(fp))
    return atomic_write(path, buf.getvalue())


def load_neighbours(path: str | Path, fp: str, n: int, k: int) -> np.ndarray:
    """The cached (n x k) neighbour ids, refused if they were computed for other inputs."""
    data = np.load(path)
    got = str(data["fingerprint"])
    if got != fp or data["ids"].shape != (n, k):
        raise ConfigError("neighbours", f"{path} was computed for other inputs (fingerprint {got}, shape "
                                        f"{tuple(data['ids'].shape)}; expected {fp}, ({n}, {k})): delete it or "
                                        "point the cache elsewhere")
    return data["ids"]


__all__ = ["IndexConfig", "build_index", "fingerprint", "load_index", "load_neighbours", "save_index",
           "save_neighbours", "search"]

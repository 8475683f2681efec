"""The curation job's config: typed dataclasses, loaded by core.config from configs/curation/*.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pathlib import Path

from core.config import ConfigError, require
from core.data import TEXT_POOLS
from core.models import HF_ID, check_model_name
from core.runs import RunConfig
from curation.hierarchical import LevelSpec


@dataclass
class TextSource:
    # A packaged pool (core.data.TEXT_POOLS: rotten_tomatoes, tweets, halueval_qa,
    # halueval_dialogue, halueval_summarization), a .csv/.jsonl file, or a HF dataset id/folder.
    name: str = "rotten_tomatoes"
    text_column: str = "text"
    limit: int | None = None

    def validate(self) -> None:
        require(self.limit is None or self.limit > 0, "limit", f"must be > 0 or null, got {self.limit}")
        if self.name in TEXT_POOLS:
            return
        p = Path(self.name).expanduser()
        if p.suffix in (".csv", ".jsonl", ".json"):
            require(p.is_file(), "name", f"file not found: {p}")
        elif not (p.is_dir() or HF_ID.match(self.name)):
            raise ConfigError("name", f"unknown text pool {self.name!r}; allowed: {', '.join(TEXT_POOLS)}, "
                                      "a .csv/.jsonl file, a saved HF dataset folder, or a hub id like 'org/name'")


@dataclass
class EmbedConfig:
    model: str = "minilm"
    max_length: int = 128
    batch_size: int = 64
    # Embedding actors (Ray Data map_batches). 0: embed in the driver, without Ray Data, for
    # pools of a few thousand texts, where an actor's start-up costs more than the embedding.
    concurrency: int = 1
    num_cpus: float = 1.0  # per embedding actor (its torch threads)
    num_gpus: float = 0.0  # per embedding actor
    device: str = "auto"

    def validate(self) -> None:
        check_model_name(self.model, key="model")
        for key in ("max_length", "batch_size"):
            require(getattr(self, key) > 0, key, f"must be > 0, got {getattr(self, key)}")
        require(self.concurrency >= 0, "concurrency", f"must be >= 0 (0: in the driver), got {self.concurrency}")
        require(self.num_gpus >= 0, "num_gpus", f"must be >= 0, got {self.num_gpus}")


@dataclass
class KMeansConfig:
    # Bottom-up: levels[0] clusters the points, levels[t] the centroids of levels[t-1].
    # resampling_steps counts step 0 (1 = plain k-means); sample_size null = half the mean cluster size.
    levels: list[LevelSpec] = field(default_factory=lambda: [LevelSpec(100, 5), LevelSpec(20, 5)])
    iters: int = 50
    tol: float = 1e-4
    # auto: k-means|| when the data is large against k, else k-means++ (curation.kmeans.auto_init)
    init: Literal["auto", "kmeans++", "kmeans||"] = "auto"
    metric: Literal["l2", "cosine"] = "cosine"
    dtype: Literal["float32", "float64"] = "float32"

    def validate(self) -> None:
        require(len(self.levels) > 0, "levels", "at least one level is needed")
        require(self.iters >= 0, "iters", f"must be >= 0, got {self.iters}")
        require(self.tol >= 0, "tol", f"must be >= 0, got {self.tol}")
        for t, spec in enumerate(self.levels):
            prev = self.levels[t - 1].k if t else None
            require(prev is None or spec.k <= prev, f"levels[{t}].k",
                    f"k={spec.k} is larger than the {prev} centroids of levels[{t - 1}] it clusters")


@dataclass
class WorkersConfig:
    num_workers: int = 2  # Ray actors holding the shards
    num_cpus: float = 1.0  # per worker
    num_gpus: float = 0.0  # per worker; device "auto" then runs on CUDA
    device: str = "auto"
    # A level above the first whose inputs (the centroids below it) take at most this many MB runs
    # in the driver: thousands of centroids do not pay for stopping the points' workers, starting
    # others and reloading the shards. 0: every level on workers.
    driver_level_mb: float = 256.0

    def validate(self) -> None:
        require(self.num_workers >= 1, "num_workers", f"must be >= 1, got {self.num_workers}")
        require(self.driver_level_mb >= 0, "driver_level_mb", f"must be >= 0, got {self.driver_level_mb}")
        require(self.num_cpus >= 0, "num_cpus", f"must be >= 0, got {self.num_cpus}")
        require(self.num_gpus >= 0, "num_gpus", f"must be >= 0, got {self.num_gpus}")


@dataclass
class SampleConfig:
    target: int = 1000  # points in the curated set
    strategy: Literal["random", "closest"] = "random"  # within a leaf cluster
    output: Literal["jsonl", "parquet"] = "jsonl"

    def validate(self) -> None:
        require(self.target > 0, "target", f"must be > 0, got {self.target}")


@dataclass
class CurationConfig:
    seed: int = 0
    # Texts to embed and curate, concatenated in this order (ids count across them).
    data: list[TextSource] = field(default_factory=lambda: [TextSource()])
    # Instead of `data`: precomputed embeddings (.npy, or a folder of .npy/.parquet shards).
    embeddings: str | None = None
    embedding_column: str = "embedding"
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    kmeans: KMeansConfig = field(default_factory=KMeansConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    run: RunConfig = field(default_factory=RunConfig)
    ray_num_cpus: int | None = None  # local Ray only; null: all cores

    def validate(self) -> None:
        require(self.embeddings is not None or len(self.data) > 0, "data",
                "name at least one text source, or set embeddings to precomputed ones")


__all__ = ["CurationConfig", "EmbedConfig", "KMeansConfig", "SampleConfig", "TextSource", "WorkersConfig"]

"""Split a labelled dataset over N simulated clients: IID or Dirichlet(alpha) over labels."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.config import ConfigError, require

log = logging.getLogger(__name__)


@dataclass
class PartitionConfig:
    num_clients: int = 20
    scheme: Literal["iid", "dirichlet"] = "dirichlet"
    alpha: float = 0.5
    min_size: int = 10
    seed: int = 0

    def validate(self) -> None:
        require(self.num_clients > 0, "num_clients", f"must be > 0, got {self.num_clients}")
        require(self.alpha > 0, "alpha", f"must be > 0 (smaller is more heterogeneous), got {self.alpha}")
        require(self.min_size >= 1, "min_size", f"must be >= 1, got {self.min_size}")


def iid_partition(n: int, num_clients: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(order, num_clients)]


def dirichlet_partition(
    labels: np.ndarray, num_clients: int, alpha: float, seed: int, min_size: int = 1, max_tries: int = 1000
) -> list[np.ndarray]:
    """Per class, share its examples among clients by proportions ~ Dir(alpha).

    Redraws until every client holds at least `min_size` examples (the usual rule from
    Hsu et al. 2019); when no draw in `max_tries` does, tops up the last one. Fails with a
    ConfigError only when min_size is impossible (clients x min_size > examples).
    """
    labels = np.asarray(labels)
    n = len(labels)
    if num_clients * min_size > n:
        raise ConfigError(
            "partition.min_size",
            f"{num_clients} clients x min_size {min_size} needs {num_clients * min_size} examples, the data has {n}",
        )
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    parts: list[list[int]] = []
    for _ in range(max_tries):
        parts = [[] for _ in range(num_clients)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(labels == c))
            props = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(props) * len(idx)).astype(int)[:-1]
            for client, chunk in enumerate(np.split(idx, cuts)):
                parts[client].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    # Small alpha over many clients and few classes: almost every draw leaves some clients
    # (nearly) empty. Top those up with random examples taken from the largest partitions,
    # which keeps the label skew of everyone else.
    log.warning("no Dirichlet(%g) draw in %d tries gave all %d clients >= %d examples; topping up the small ones "
                "from the largest", alpha, max_tries, num_clients, min_size)
    for client in sorted(range(num_clients), key=lambda i: len(parts[i])):
        while len(parts[client]) < min_size:
            donor = max(range(num_clients), key=lambda i: len(parts[i]))
            j = int(rng.integers(len(parts[donor])))
            parts[client].append(parts[donor].pop(j))
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def make_partitions(cfg: PartitionConfig, labels: np.ndarray) -> list[np.ndarray]:
    if cfg.scheme == "iid":
        parts = iid_partition(len(labels), cfg.num_clients, cfg.seed)
        require(min(len(p) for p in parts) >= cfg.min_size, "partition.min_size",
                f"IID parts of {len(labels)} examples over {cfg.num_clients} clients are below {cfg.min_size}")
        return parts
    return dirichlet_partition(labels, cfg.num_clients, cfg.alpha, cfg.seed, cfg.min_size)


def summarize(parts: list[np.ndarray], labels: np.ndarray, label_names: list[str]) -> dict:
    """Sizes and per-label histogram per client, for the run directory."""
    labels = np.asarray(labels)
    hist = [np.bincount(labels[p], minlength=len(label_names)).tolist() for p in parts]
    sizes = [len(p) for p in parts]
    return {
        "label_names": label_names,
        "sizes": sizes,
        "label_histogram": hist,
        "min_size": min(sizes),
        "max_size": max(sizes),
    }

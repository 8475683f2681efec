"""Seeds derived from the run's seed and a role (round r, client c, step s): no global RNG state."""

from __future__ import annotations

import hashlib

import numpy as np

import torch


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from the parts' text: stable across processes and Python runs."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def generator(device: torch.device | str, *parts: object) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(*parts))
    return g


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hash_uniform(ids: torch.Tensor | np.ndarray, *parts: object) -> torch.Tensor:
    """A uniform [0, 1) float64 per id, a pure function of (id, parts): counter-based (splitmix64).

    Unlike a generator stream, the draw for row i does not depend on which other rows are
    drawn with it, so a sharded run draws exactly what a single process would.
    """
    device = ids.device if isinstance(ids, torch.Tensor) else torch.device("cpu")
    raw = ids.cpu().numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
    with np.errstate(over="ignore"):
        key = _splitmix64(np.asarray([derive_seed(*parts)], dtype=np.uint64))[0]
        z = _splitmix64(raw.astype(np.int64).view(np.uint64) ^ key)
    return torch.from_numpy((z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))).to(device)

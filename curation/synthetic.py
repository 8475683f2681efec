"""A seeded Gaussian mixture with a long tail of rare modes, written to a .npy in blocks.

For measuring curation at sizes that do not fit comfortably in one process: the points are
generated `BLOCK_ROWS` at a time into a memory-mapped .npy, so the writer never holds more
than one block, and read back memory-mapped by the shard workers. Block b depends only on
(seed, b), so the first n rows are the same for every file size: the 1M-point file is the
prefix of the 10M-point one.

Mode j is drawn with probability proportional to (j + 1)^-alpha (Zipf): with the defaults
(300 modes, alpha = 1.5) the least likely half of the modes holds about 2% of the points.
That is the situation balanced curation is for (Vo et al. 2024): a random sample keeps the
tail's 2%, a sample balanced over clusters should keep much more.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.config import require
from core.runs import atomic_write, progress

# Rows generated per block. The data depends on it (each block has its own random stream),
# so it is part of the format, not a tuning knob.
BLOCK_ROWS = 1 << 18


@dataclass(frozen=True)
class Mixture:
    d: int = 64
    modes: int = 300
    alpha: float = 1.5  # Zipf exponent of the mode probabilities
    spread: float = 0.25  # standard deviation of a point around its mode's centre (centres ~ N(0, I))
    seed: int = 0

    def probabilities(self) -> np.ndarray:
        p = np.arange(1, self.modes + 1, dtype=np.float64) ** -self.alpha
        return p / p.sum()

    def centres(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 0x6D6978])  # "mix": apart from the blocks' streams
        return rng.standard_normal((self.modes, self.d)).astype(np.float32)

    def rare(self, fraction: float = 0.5) -> np.ndarray:
        """Boolean mask of the rare modes: the least likely `fraction` of them (the last ones)."""
        mask = np.zeros(self.modes, dtype=bool)
        mask[self.modes - int(round(self.modes * fraction)):] = True
        return mask

    def block(self, b: int, centres: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Block b: BLOCK_ROWS points (float32) and their modes (int32)."""
        centres = self.centres() if centres is None else centres
        rng = np.random.default_rng([self.seed, 1, b])
        modes = rng.choice(self.modes, size=BLOCK_ROWS, p=self.probabilities()).astype(np.int32)
        x = rng.standard_normal((BLOCK_ROWS, self.d), dtype=np.float32)
        x *= np.float32(self.spread)
        x += centres[modes]
        return x, modes

    def name(self, n: int) -> str:
        return f"mixture-n{n}-d{self.d}-m{self.modes}-a{self.alpha:g}-s{self.spread:g}-seed{self.seed}"


def write_mixture(folder: str | Path, n: int, mix: Mixture = Mixture()) -> tuple[Path, Path]:
    """(points .npy, modes .npy) of the first n points of `mix`, written once into `folder`.

    Both files are written under temporary names and renamed when complete, the points last:
    the points file existing is the completion marker, so an interrupted write is redone on the
    next call and a finished one is reused.
    """
    require(n > 0, "n", f"must be > 0, got {n}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    points, modes = folder / f"{mix.name(n)}.npy", folder / f"{mix.name(n)}.modes.npy"
    if points.is_file() and modes.is_file():
        return points, modes
    tmp_points, tmp_modes = folder / f".{points.name}.tmp", folder / f".{modes.name}.tmp"
    xs = np.lib.format.open_memmap(tmp_points, mode="w+", dtype=np.float32, shape=(n, mix.d))
    ms = np.lib.format.open_memmap(tmp_modes, mode="w+", dtype=np.int32, shape=(n,))
    centres = mix.centres()
    blocks = range((n + BLOCK_ROWS - 1) // BLOCK_ROWS)
    for b in progress(blocks, desc=f"mixture {n:,} x {mix.d}"):
        s = b * BLOCK_ROWS
        take = min(BLOCK_ROWS, n - s)
        x, m = mix.block(b, centres)
        xs[s : s + take] = x[:take]
        ms[s : s + take] = m[:take]
        xs.flush()  # written pages go to the file, so the writer's memory stays one block
    ms.flush()
    del xs, ms
    os.replace(tmp_modes, modes)
    os.replace(tmp_points, points)
    atomic_write(folder / f"{mix.name(n)}.json", json.dumps({"n": n, **asdict(mix), "block_rows": BLOCK_ROWS}))
    return points, modes


__all__ = ["BLOCK_ROWS", "Mixture", "write_mixture"]

"""BEiT's block-wise mask generator for masked tabular image modelling: rectangles of at least
`min_block` patches with aspect ratio in [min_aspect, 1/min_aspect], placed at random until
`num_masked` patches are masked (never more). Seeded per image, so any sharding draws the same."""

from __future__ import annotations

import math

import numpy as np


def block_mask(grid: tuple[int, int], num_masked: int, min_block: int = 16, min_aspect: float = 0.3,
               seed: int = 0, max_block: int | None = None) -> np.ndarray:
    """A [rows, cols] bool mask with at most num_masked True, in blocks."""
    rows, cols = grid
    rng = np.random.default_rng(seed)
    mask = np.zeros(grid, bool)
    max_block = max_block or num_masked
    log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
    count = 0
    stalls = 0
    while count < num_masked and stalls < 10:
        budget = min(num_masked - count, max_block)
        delta = 0
        for _ in range(10):
            if budget < min_block:
                break
            target = rng.uniform(min_block, budget)
            aspect = math.exp(rng.uniform(*log_aspect))
            h = int(round(math.sqrt(target * aspect)))
            w = int(round(math.sqrt(target / aspect)))
            if 0 < h < rows and 0 < w < cols:
                top, left = int(rng.integers(0, rows - h + 1)), int(rng.integers(0, cols - w + 1))
                new = h * w - mask[top:top + h, left:left + w].sum()
                if 0 < new <= budget:
                    mask[top:top + h, left:left + w] = True
                    delta = int(new)
                    break
        if delta == 0:
            stalls += 1
            if budget < min_block:  # BEiT ends here; fill the last few as one more small block
                min_block = max(1, budget)
        else:
            count += delta
    return mask


__all__ = ["block_mask"]

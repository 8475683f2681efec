"""The block mask generator: exact budget, blocks (not scattered patches), seeded."""

import numpy as np
from scipy import ndimage

from tables.masking import block_mask


def test_block_masks_hit_the_budget_in_blocks():
    grid, k = (14, 14), 75  # BEiT's 196 patches, 75 masked
    masks = [block_mask(grid, k, min_block=16, seed=s) for s in range(100)]
    assert all(m.sum() == k for m in masks)
    # blocks: a few connected pieces, where as many scattered patches fall into dozens
    pieces = np.mean([ndimage.label(m)[1] for m in masks])
    rng = np.random.default_rng(0)
    scattered = []
    for _ in range(100):
        m = np.zeros(grid, bool)
        m.flat[rng.choice(196, k, replace=False)] = True
        scattered.append(ndimage.label(m)[1])
    assert pieces < 6 < 3 * 6 < np.mean(scattered), (pieces, np.mean(scattered))
    # the largest connected piece is at least one minimum block
    sizes = [np.bincount(ndimage.label(m)[0].ravel())[1:].max() for m in masks]
    assert min(sizes) >= 16
    # aspect ratios vary (0.3 to 3.3): both tall and wide pieces occur
    spans = [(np.ptp(np.nonzero(m)[0]) + 1) / (np.ptp(np.nonzero(m)[1]) + 1) for m in masks]
    assert min(spans) < 1 < max(spans)


def test_masks_are_seeded():
    assert np.array_equal(block_mask((12, 12), 50, 8, seed=4), block_mask((12, 12), 50, 8, seed=4))
    assert not np.array_equal(block_mask((12, 12), 50, 8, seed=4), block_mask((12, 12), 50, 8, seed=5))

"""ASVD's sensitivity-based per-layer rank search (Yuan et al., 2023, "ASVD: Activation-aware
Singular Value Decomposition", arXiv:2312.05821, section 3.3; github.com/hahnyuan/ASVD4LLM).

1. Sensitivity: for every target layer and every parameter ratio rho of a grid, the
   calibration perplexity of the model with only that layer replaced by its rank-r ASVD
   approximation, r = floor(rho m n / (m + n)).
2. Search: sort the (layer, rho, ppl) triples by ppl, most harmful first; a cut in that list
   allows every triple after it, and each layer takes the smallest rho it is allowed (a layer
   with none stays dense, rho = 1). Bisection finds the first cut whose parameters fit the
   global target.
The search leaves the layers below the target by up to one grid step; `allocate_ranks`
(compression.baselines) hands the rest out as extra ranks.

The pure search (`search_ratios`) is separate from the measuring (`layer_sensitivity`), which
runs one perplexity per (layer, rho): the cost of the method, len(grid) x layers forward passes
over the sensitivity sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn
from tqdm import tqdm

from compression.baselines import asvd_factors, rank_for_ratio
from compression.data import perplexity
from core.config import require


def search_ratios(sensitivity: Mapping[tuple[str, float], float], sizes: Mapping[str, int], target: float) -> dict[str, float]:
    """Per layer, its parameter ratio (1.0 = stays dense), by ASVD's bisection over the sorted
    sensitivities; the parameter-weighted mean ratio is at most `target` (if any cut reaches it).

    `sensitivity`: {(layer, rho): ppl with only that layer at rho}; `sizes`: {layer: m n}.
    """
    require(0.0 < target <= 1.0, "keep_ratio", f"must be in (0, 1], got {target}")
    # most harmful first; ties by layer then ratio, so the result does not depend on dict order
    triples = sorted(sensitivity.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))
    total = sum(sizes.values())

    def ratios_from(cut: int) -> dict[str, float]:
        out = dict.fromkeys(sizes, 1.0)
        for (layer, rho), _ in triples[cut:]:
            out[layer] = min(out[layer], rho)
        return out

    def mean_ratio(r: Mapping[str, float]) -> float:
        return sum(sizes[n] * r[n] for n in sizes) / total

    lo, hi = 0, len(triples) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if mean_ratio(ratios_from(mid)) > target:
            hi = mid
        else:
            lo = mid + 1
    # lo is the first cut whose mean ratio exceeds the target (or the last cut); step back to
    # the last cut that fits, the most layers' least harmful choices within the budget
    cut = lo
    while cut > 0 and mean_ratio(ratios_from(cut)) > target:
        cut -= 1
    return ratios_from(cut)


@torch.no_grad()
def layer_sensitivity(model: nn.Module, names: Sequence[str], act_absmean: Mapping[str, torch.Tensor],
                      blocks: torch.Tensor, grid: Sequence[float], alpha: float = 0.5,
                      batch_size: int = 8) -> dict[tuple[str, float], float]:
    """{(layer, rho): perplexity on `blocks` with only that layer at rank_for_ratio(rho)}; the
    layer's weight is swapped for its low-rank product in place and restored after."""
    out = {}
    for name in tqdm(names, desc="ASVD sensitivity", leave=False):
        layer = model.get_submodule(name)
        w = layer.weight.detach().clone()
        m, n = w.shape
        for rho in grid:
            up, down = asvd_factors(w, act_absmean[name], rank_for_ratio(m, n, rho), alpha)
            layer.weight.copy_((up @ down).to(w.dtype))
            out[(name, float(rho))] = perplexity(model, blocks, batch_size)
        layer.weight.copy_(w)
    return out


__all__ = ["layer_sensitivity", "search_ratios"]

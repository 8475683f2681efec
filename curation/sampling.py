"""Balanced hierarchical sampling (Vo et al. 2024, section C of the method spec).

Top-down over the tree from `hierarchical_kmeans`: the top level's clusters share the target
under a common cap (the largest integer c with sum_i min(c, n_i) <= N, the remainder +1 to
random clusters still above the cap), each cluster's quota is shared the same way among its
children, and level-1 clusters give up their quota in points. Every level is handled for all
parents at once (segment sums and sorts), never with a Python loop over clusters, so the
cost stays flat at the paper's 10^4..10^7 clusters per level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from core.config import require
from core.seeding import generator, hash_uniform
from curation.hierarchical import LevelResult, level_sizes, ranks_within_groups

LeafStrategy = Literal["random", "closest"]


def _segment_sum(values: torch.Tensor, segments: torch.Tensor, n_segments: int) -> torch.Tensor:
    return torch.zeros(n_segments, dtype=values.dtype, device=values.device).index_add_(0, segments, values)


def segmented_quotas(
    sizes: torch.Tensor,
    parents: torch.Tensor,
    targets: torch.Tensor,
    g: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Share each parent's target among its children: (cap per parent, quota per child).

    For every parent p at once, bisection finds the largest integer cap c_p with
    sum_{i in p} min(c_p, n_i) <= T_p; then the remainder T_p - sum min(c_p, n_i) goes +1 to
    that many children with n_i > c_p, chosen at random. There are always more such children
    than the remainder (else c_p + 1 would fit), so every quota ends up <= n_i and the quotas
    of p add up to exactly T_p when T_p <= sum n_i. A parent whose target covers all its
    children gets cap = its largest child.
    """
    sizes = sizes.to(torch.int64)
    targets = targets.to(torch.int64)
    n_par = targets.numel()
    hi = torch.zeros(n_par, dtype=torch.int64, device=sizes.device)
    hi = hi.scatter_reduce(0, parents, sizes, reduce="amax", include_self=True)
    lo = torch.zeros_like(hi)
    while bool((lo < hi).any()):  # ~log2(largest cluster) rounds, each one pass over the children
        mid = (lo + hi + 1) // 2
        ok = _segment_sum(torch.minimum(mid[parents], sizes), parents, n_par) <= targets
        lo = torch.where(ok, mid, lo)
        hi = torch.where(ok, hi, mid - 1)
    cap = lo
    base = torch.minimum(cap[parents], sizes)
    remainder = targets - _segment_sum(base, parents, n_par)
    eligible = sizes > cap[parents]
    # random order among the eligible children of each parent, eligible ones first
    keys = torch.rand(sizes.numel(), generator=g, dtype=torch.float64).to(sizes.device)
    keys = keys + (~eligible).to(torch.float64) * 2.0
    extra = eligible & (ranks_within_groups(parents, keys) < remainder[parents])
    return cap, base + extra.to(torch.int64)


def _check_target(target: int, pool: int) -> None:
    require(isinstance(target, int) and target >= 0, "target", f"must be a non-negative integer, got {target!r}")
    require(target <= pool, "target", f"target={target} is larger than the pool of {pool} points")


def balanced_cap(sizes: Sequence[int] | torch.Tensor, target: int, seed: int = 0) -> tuple[int, torch.Tensor]:
    """(cap, quotas) for one level: quotas_i = min(cap, n_i), plus the remainder +1 each to
    random clusters with n_i > cap, so that sum(quotas) == target exactly."""
    sizes = torch.as_tensor(sizes, dtype=torch.int64)
    require(sizes.dim() == 1 and bool((sizes >= 0).all()), "sizes", "expected a vector of non-negative cluster sizes")
    _check_target(target, int(sizes.sum()))
    parents = torch.zeros(sizes.numel(), dtype=torch.int64, device=sizes.device)
    cap, quotas = segmented_quotas(sizes, parents, torch.tensor([target], device=sizes.device),
                                   generator("cpu", seed, "balanced-cap"))
    return int(cap[0]), quotas


def quotas_from_sizes(
    sizes: Sequence[torch.Tensor], upper_assignments: Sequence[torch.Tensor], target: int, seed: int
) -> list[torch.Tensor]:
    """Quota of every cluster of every level, top-down, from the sizes alone.

    `sizes[t]` is the size in points of each level-t cluster and `upper_assignments[t - 1]`
    the level-t cluster of each level-(t-1) cluster: all k-long, so a sharded run needs no
    point-level vector in one place.
    """
    _check_target(target, int(sizes[0].sum()))
    top = len(sizes) - 1
    device = sizes[top].device
    parents = torch.zeros(sizes[top].numel(), dtype=torch.int64, device=device)
    _, q = segmented_quotas(sizes[top], parents, torch.tensor([target], device=device),
                            generator("cpu", seed, "balanced", top))
    quotas = [q]
    for t in range(top - 1, -1, -1):
        _, q = segmented_quotas(sizes[t], upper_assignments[t], q, generator("cpu", seed, "balanced", t))
        quotas.append(q)
    return quotas[::-1]


def balanced_quotas(levels: list[LevelResult], target: int, seed: int) -> list[torch.Tensor]:
    """Quota of every cluster of every level (same order as `levels`), summing to `target` per level."""
    return quotas_from_sizes(level_sizes(levels), [lv.assignments for lv in levels[1:]], target, seed)


def leaf_keys(ids: torch.Tensor, sqdist: torch.Tensor, strategy: LeafStrategy, seed: int) -> torch.Tensor:
    """The order in which a level-1 cluster gives up points (smallest first): random, hashed from
    each point's id (the same draw in a sharded run), or nearest the centroid."""
    require(strategy in ("random", "closest"), "strategy",
            f"{strategy!r} is not allowed; allowed values: 'random', 'closest'")
    return sqdist.to(torch.float64) if strategy == "closest" else hash_uniform(ids, seed, "balanced-leaf")


def balanced_sample(
    levels: list[LevelResult],
    target: int,
    seed: int,
    strategy: LeafStrategy = "random",
) -> torch.Tensor:
    """Indices of exactly `target` distinct points of x, sorted, balanced down the tree.

    A level-1 cluster with quota q gives all its points if it has no more than q, else q of
    them: at random (the paper's default) or the q nearest its centroid.
    """
    labels = levels[0].assignments
    keys = leaf_keys(torch.arange(labels.numel(), device=labels.device), levels[0].sqdist, strategy, seed)
    q = balanced_quotas(levels, target, seed)[0]
    return (ranks_within_groups(labels, keys) < q[labels]).nonzero().squeeze(1)


__all__ = ["balanced_cap", "balanced_quotas", "balanced_sample", "leaf_keys", "quotas_from_sizes", "segmented_quotas"]

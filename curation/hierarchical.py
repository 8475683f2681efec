"""Hierarchical k-means with resampling (Vo et al. 2024, section B of the method spec).

Level 1 clusters the points; level t > 1 clusters the centroids of level t-1, so the levels
form a tree over the points. Within a level, step 0 is k-means on all inputs and every later
step runs a fresh k-means on r inputs per current cluster and reassigns all inputs. Plain
k-means puts centroids with density ~ p^(d/(d+2)), close to the data density; fitting on an
equal number of points per cluster moves them toward uniform coverage of the support.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from core.config import ConfigError, require
from core.seeding import derive_seed, hash_uniform
from curation.kmeans import DType, InitName, Metric, assign, check_k, check_points, kmeans, prepare

SampleStrategy = Literal["closest", "random"]


@dataclass
class LevelSpec:
    """One level of the tree.

    `resampling_steps` counts steps the way the paper's configs do: step 0 (k-means on all
    inputs) included, so 1 is plain k-means and 10 is k-means followed by 9 resampling
    steps. The released web-image configuration reads
    [LevelSpec(10_000_000, 1), LevelSpec(500_000, 10, 10), LevelSpec(50_000, 10, 5),
    LevelSpec(10_000, 10, 3)]. `sample_size` (r) defaults to half the average cluster size
    at that level, the paper's rule of thumb.
    """

    k: int
    resampling_steps: int = 1
    sample_size: int | None = None
    sample_strategy: SampleStrategy = "closest"

    def validate(self) -> None:
        require(self.k >= 1, "k", f"must be >= 1, got {self.k}")
        require(self.resampling_steps >= 1, "resampling_steps",
                f"must be >= 1 (1 = plain k-means, step 0 included), got {self.resampling_steps}")
        require(self.sample_size is None or self.sample_size >= 1, "sample_size",
                f"must be >= 1 or null, got {self.sample_size}")
        require(self.sample_strategy in ("closest", "random"), "sample_strategy",
                f"{self.sample_strategy!r} is not allowed; allowed values: 'closest', 'random'")


@dataclass
class LevelResult:
    centroids: torch.Tensor  # k_t x d
    assignments: torch.Tensor  # (inputs of level t,) int64: cluster of each input
    sqdist: torch.Tensor  # (inputs of level t,): squared distance of each input to its centroid


def check_levels(levels: list[LevelSpec], n: int) -> None:
    """Fail before any work if a level asks for more clusters than it has inputs."""
    require(len(levels) > 0, "levels", "at least one level is needed")
    inputs = n
    for t, spec in enumerate(levels):
        key = f"levels[{t}]"
        try:
            spec.validate()
        except ConfigError as err:  # re-key the message with the level's index
            raise ConfigError(f"{key}.{err.key}", str(err).split(": ", 1)[-1]) from None
        what = "points" if t == 0 else f"centroids of levels[{t - 1}]"
        require(spec.k <= inputs, f"{key}.k", f"k={spec.k} clusters is larger than its {inputs} inputs ({what})")
        inputs = spec.k


def ranks_within_groups(groups: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """For each element, its 0-based rank by `keys` among the elements of the same group.

    Two stable sorts (by key, then by group) order every group by key without a loop
    over groups; the rank is the position minus where the group starts (from the group
    sizes). Temporaries are freed as soon as they are used: this runs on every row of a shard
    worker, where each n-long int64 costs 8 bytes a row against the 4d bytes of the row itself.
    """
    if groups.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=groups.device)
    n = groups.numel()
    order = torch.sort(keys, stable=True).indices
    g = groups[order]
    by_group = torch.sort(g, stable=True)
    del g
    sorted_groups = by_group.values
    order = order[by_group.indices]
    del by_group
    sizes = torch.bincount(sorted_groups - sorted_groups[0])
    starts = torch.cumsum(sizes, 0) - sizes  # where each group starts in sorted order
    ranks = torch.empty(n, dtype=torch.int64, device=groups.device)
    rank_sorted = torch.arange(n, device=groups.device)
    rank_sorted -= starts[sorted_groups - sorted_groups[0]]
    del sorted_groups
    ranks[order] = rank_sorted
    return ranks


def resample_keys(
    ids: torch.Tensor, sqdist: torch.Tensor, strategy: SampleStrategy, seed: int, step: int
) -> torch.Tensor:
    """The order in which a resampling step takes inputs within a cluster (smallest first).

    "closest": the squared distance to the centroid; "random": a draw hashed from each input's
    id, so a sharded run draws what a single process does.
    """
    if strategy == "closest":
        return sqdist.to(torch.float64)
    return hash_uniform(ids, seed, "resample", step)


def top_up_keys(ids: torch.Tensor, seed: int, step: int) -> torch.Tensor:
    """Order among the inputs outside the subset, when empty clusters left fewer than k of them."""
    return hash_uniform(ids, seed, "resample-extra", step)


def resample_subset(
    labels: torch.Tensor, sqdist: torch.Tensor, r: int, strategy: SampleStrategy, seed: int, step: int
) -> torch.Tensor:
    """Indices (ascending) of up to r inputs per cluster: the nearest to the centroid, or r at random."""
    ids = torch.arange(labels.numel(), device=labels.device)
    keys = resample_keys(ids, sqdist, strategy, seed, step)
    return (ranks_within_groups(labels, keys) < r).nonzero().squeeze(1)


def top_up(subset: torch.Tensor, n: int, k: int, seed: int, step: int) -> torch.Tensor:
    """`subset` followed by k - len(subset) other inputs (smallest top_up_keys first), if short."""
    if subset.numel() >= k:
        return subset
    taken = torch.zeros(n, dtype=torch.bool, device=subset.device)
    taken[subset] = True
    rest = (~taken).nonzero().squeeze(1)
    order = torch.sort(top_up_keys(rest, seed, step), stable=True).indices
    return torch.cat([subset, rest[order[: k - subset.numel()].to(rest.device)]])


def default_sample_size(spec: "LevelSpec", n_inputs: int) -> int:
    """r: the configured sample size, else half the average cluster size (the paper's rule)."""
    return spec.sample_size if spec.sample_size is not None else max(1, n_inputs // (2 * spec.k))


def kmeans_with_resampling(
    inputs: torch.Tensor,
    spec: LevelSpec,
    *,
    seed: int,
    iters: int = 50,
    tol: float = 1e-4,
    init: InitName = "auto",
    metric: Metric = "l2",
    dtype: DType = "float32",
) -> LevelResult:
    """One level: k-means on all inputs, then resampling_steps - 1 resampling steps."""
    k = spec.k
    n = inputs.shape[0]
    check_k(k, n, "k")
    r = default_sample_size(spec, n)
    x = prepare(inputs, metric, dtype)
    common = dict(iters=iters, tol=tol, init=init, metric=metric, dtype=dtype)
    centroids = kmeans(x, k, seed=derive_seed(seed, "step", 0), **common).centroids
    # x and the centroids are already unit rows for cosine, where 2 - 2cos is their L2 distance
    labels, sqdist = assign(x, centroids, "l2")
    for step in range(1, spec.resampling_steps):
        # Empty clusters can leave fewer than the k inputs a fresh k-means needs: top up with
        # other inputs instead of failing mid-run.
        subset = top_up(resample_subset(labels, sqdist, r, spec.sample_strategy, seed, step), n, k, seed, step)
        # A fresh k-means (new init), not a warm start: the point is to forget where the
        # dense regions pulled the previous centroids.
        centroids = kmeans(x[subset], k, seed=derive_seed(seed, "step", step), **common).centroids
        labels, sqdist = assign(x, centroids, "l2")
    return LevelResult(centroids=centroids, assignments=labels, sqdist=sqdist)


def hierarchical_kmeans(
    x: torch.Tensor,
    levels: list[LevelSpec],
    seed: int,
    *,
    iters: int = 50,
    tol: float = 1e-4,
    init: InitName = "auto",
    metric: Metric = "l2",
    dtype: DType = "float32",
) -> list[LevelResult]:
    """Bottom-up tree: level 1 clusters x, level t clusters the centroids of level t-1.

    Returns one LevelResult per level; `levels[t].assignments` maps level-t inputs (points
    for t = 0, level t-1 clusters otherwise) to level-t clusters.
    """
    check_points(x)
    check_levels(levels, x.shape[0])
    out: list[LevelResult] = []
    inputs = x
    for t, spec in enumerate(levels):
        res = kmeans_with_resampling(inputs, spec, seed=derive_seed(seed, "level", t), iters=iters, tol=tol,
                                     init=init, metric=metric, dtype=dtype)
        out.append(res)
        inputs = res.centroids
    return out


def level_sizes(levels: list[LevelResult]) -> list[torch.Tensor]:
    """Size of every cluster of every level counted in points of x (int64, one tensor per level).

    The last entry is the top level's sizes. A level-t cluster's size is the sum of the sizes
    of the level t-1 clusters assigned to it: one index_add_ per level.
    """
    k0 = levels[0].centroids.shape[0]
    sizes = [torch.bincount(levels[0].assignments, minlength=k0)]
    for lv in levels[1:]:
        s = torch.zeros(lv.centroids.shape[0], dtype=torch.int64, device=sizes[-1].device)
        sizes.append(s.index_add_(0, lv.assignments, sizes[-1]))
    return sizes


def point_clusters(levels: list[LevelResult], level: int) -> torch.Tensor:
    """The level-`level` cluster (0-based level index) of every point of x, through the tree."""
    lab = levels[0].assignments
    for lv in levels[1 : level + 1]:
        lab = lv.assignments[lab]
    return lab


__all__ = [
    "LevelResult",
    "LevelSpec",
    "check_levels",
    "hierarchical_kmeans",
    "kmeans_with_resampling",
    "level_sizes",
    "point_clusters",
    "ranks_within_groups",
    "default_sample_size",
    "resample_keys",
    "resample_subset",
    "top_up",
    "top_up_keys",
]

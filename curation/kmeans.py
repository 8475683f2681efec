"""k-means on tensors: blocked GEMM distances, mergeable cluster statistics, k-means++ and k-means||.

Everything here is a pure function of its tensors and a seed, so the same code runs in one
process or inside shard-resident workers: a worker calls `shard_stats` on its rows and the
driver combines the partial (sums, counts, inertia) with `lloyd_step`. Nothing n-long ever
has to leave a worker.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from core.config import ConfigError, require
from core.seeding import generator
from curation.native import cluster_sums_f32, row_min

Metric = Literal["l2", "cosine"]
DType = Literal["float32", "float64"]
InitName = Literal["auto", "kmeans++", "kmeans||"]

# The b x k distance tile of `assign` is kept under this many bytes, so it stays in cache
# between the GEMM that writes it and the min that reads it. Measured at n=200k, d=384,
# k=1024 on 2 cores with one reused tile, a whole Lloyd iteration took 0.66-0.85 s over four
# runs with 2048-row tiles (8 MiB), 0.77 s with 1024 and 0.87 s with 512 (runs on this shared
# machine vary by 10-20%); before the tile was reused, 16384-row blocks (64 MiB) were 1.5-2x
# slower than 2048.
DEFAULT_BLOCK_BYTES = 8 << 20
# Fewest rows per block. With very many centroids (the paper's upper levels have 10^5-10^7)
# the budget would leave a handful of rows per block and every block would stream all
# centroids from memory; instead the centroids are tiled too, with at least this many rows
# sharing each tile.
MIN_BLOCK_ROWS = 256

# `init="auto"` uses k-means|| when the data is at least this many times larger than the
# candidate set k-means|| reduces (1 + rounds * oversampling: ~10k for k=1024). k-means++ needs k passes
# over all of x, one after the other, each a thin (n x ~10) product that runs at memory speed,
# not GEMM speed, and in a distributed run each pass is a global synchronisation. k-means||
# needs `rounds` (5) passes, each a real GEMM against ~2k new candidates, and then runs
# k-means++ on the candidates only, so it gains nothing when x is not much larger than the
# candidate set. Measured on 2 cores (d=128, k=256, 2561 candidates): equal at n=5k (ratio 2),
# k-means|| 1.4x faster at n=10k (ratio 4); at n=100k, k=512: 1.4 s against 4.1 s, with the
# same potential within 1-4% either way.
AUTO_PARALLEL_FACTOR = 4
# Rows converted to float64 at a time in `cluster_sums`, into one reused buffer of about
# this many bytes: a fresh 100 MB temporary per chunk made the sums 9x slower (page faults).
_SUM_BUFFER_BYTES = 8 << 20


class ClusterStats(NamedTuple):
    """What one shard contributes to a Lloyd step: k x d sums (float64), k counts, its inertia."""

    sums: torch.Tensor
    counts: torch.Tensor
    inertia: float = 0.0


@dataclass
class KMeansResult:
    centroids: torch.Tensor  # k x d, in the run's dtype (unit rows for cosine)
    labels: torch.Tensor  # n, int64: nearest centroid of each row
    inertia: float  # sum of squared distances of rows to their centroid (on unit rows for cosine)
    n_iter: int  # Lloyd updates done


# --- validation and preparation ---------------------------------------------------------------


def torch_dtype(dtype: DType | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        require(dtype in (torch.float32, torch.float64), "dtype", f"{dtype} is not float32 or float64")
        return dtype
    table = {"float32": torch.float32, "float64": torch.float64}
    require(dtype in table, "dtype", f"{dtype!r} is not allowed; allowed values: 'float32', 'float64'")
    return table[dtype]


def check_points(x: torch.Tensor, key: str = "x") -> None:
    """Refuse what would silently poison every centroid: empty input, non-matrices, NaN/inf rows."""
    require(x.dim() == 2, key, f"expected an n x d matrix, got shape {tuple(x.shape)}")
    n, d = x.shape
    require(n > 0, key, f"no points (shape {tuple(x.shape)})")
    require(d > 0, key, f"points have no features (shape {tuple(x.shape)})")
    require(x.is_floating_point(), key, f"expected floating-point embeddings, got {x.dtype}")
    bad = ~torch.isfinite(x).all(dim=1)
    n_bad = int(bad.sum())
    if n_bad:
        first = int(bad.nonzero()[0, 0])
        raise ConfigError(key, f"{n_bad} of {n} rows contain NaN or inf (first at row {first})")


def check_k(k: int, n: int, key: str = "k") -> None:
    require(isinstance(k, int) and k >= 1, key, f"k must be a positive integer, got {k!r}")
    require(k <= n, key, f"k={k} clusters is larger than the number of points n={n}")


def prepare(x: torch.Tensor, metric: Metric, dtype: DType | torch.dtype) -> torch.Tensor:
    """x in the run's dtype; unit rows for cosine, so that cosine k-means is L2 k-means on the sphere."""
    require(metric in ("l2", "cosine"), "metric", f"{metric!r} is not allowed; allowed values: 'l2', 'cosine'")
    x = x.to(torch_dtype(dtype))
    return F.normalize(x, dim=1) if metric == "cosine" else x


def block_shape_for(k: int, dtype: torch.dtype, budget_bytes: int = DEFAULT_BLOCK_BYTES) -> tuple[int, int]:
    """(rows, centroid columns) per distance tile so that a rows x columns tile fits `budget_bytes`.

    All k centroids in one tile while that leaves at least MIN_BLOCK_ROWS rows; otherwise
    MIN_BLOCK_ROWS rows and as many centroids as fit.
    """
    itemsize = torch.empty((), dtype=dtype).element_size()
    k = max(k, 1)
    rows = budget_bytes // (k * itemsize)
    if rows >= MIN_BLOCK_ROWS:
        return rows, k
    return MIN_BLOCK_ROWS, max(1, budget_bytes // (MIN_BLOCK_ROWS * itemsize))


def block_rows_for(k: int, dtype: torch.dtype, budget_bytes: int = DEFAULT_BLOCK_BYTES) -> int:
    """Rows per block of `assign` for k centroids (see block_shape_for)."""
    return block_shape_for(k, dtype, budget_bytes)[0]


# --- assignment and statistics ---------------------------------------------------------------


def rows_per_block(x: torch.Tensor, budget_bytes: int = DEFAULT_BLOCK_BYTES) -> int:
    """Rows of x that fill `budget_bytes`: an elementwise temporary over a block then costs the
    budget whatever d is (a fixed 65,536 rows cost 100 MB a temporary at d=384)."""
    return max(1, budget_bytes // max(1, x[:1].numel() * x.element_size()))


def row_sqnorms(x: torch.Tensor, block_rows: int | None = None) -> torch.Tensor:
    """||x_i||^2 per row, in blocks: (x * x).sum(1) on all of x would allocate a copy of x."""
    block_rows = block_rows or rows_per_block(x)
    out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for s in range(0, x.shape[0], block_rows):
        xb = x[s : s + block_rows]
        out[s : s + block_rows] = (xb * xb).sum(dim=1)
    return out


def _assign_prepared(
    x: torch.Tensor,
    x_sqnorm: torch.Tensor | None,
    centroids: torch.Tensor,
    block_rows: int,
    block_cols: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    n, k = x.shape[0], centroids.shape[0]
    block_cols = k if block_cols is None else block_cols
    labels = torch.empty(n, dtype=torch.int64, device=x.device)
    mind = torch.empty(n, dtype=x.dtype, device=x.device)
    c_sqnorm = (centroids * centroids).sum(dim=1)
    ct = centroids.t()
    # One tile buffer for the whole pass: a fresh multi-MB tensor per block is a fresh mmap
    # and its page faults, which cost ~0.3 s of a 0.9 s pass at n=200k, d=384, k=1024.
    tile = torch.empty(min(block_rows, n), min(block_cols, k), dtype=x.dtype, device=x.device)
    for s in range(0, n, block_rows):
        e = min(s + block_rows, n)
        best_val: torch.Tensor | None = None
        for c0 in range(0, k, block_cols):
            c1 = min(c0 + block_cols, k)
            dist = tile[: e - s, : c1 - c0]
            # ||c||^2 - 2 x.c in one addmm; ||x||^2 does not change the argmin, so it is added
            # to the b minima only, never to the b x k block.
            torch.addmm(c_sqnorm[c0:c1].unsqueeze(0), x[s:e], ct[:, c0:c1], beta=1.0, alpha=-2.0, out=dist)
            vals, idx = row_min(dist)  # = dist.min(dim=1), vectorised (curation.native)
            if best_val is None:
                best_val, best_idx = vals, idx
            else:  # strict <: on a tie the earlier tile's (lower) index wins, as in one argmin
                closer = vals < best_val
                best_val = torch.where(closer, vals, best_val)
                best_idx = torch.where(closer, idx + c0, best_idx)
        labels[s:e] = best_idx
        xsq = x_sqnorm[s:e] if x_sqnorm is not None else (x[s:e] * x[s:e]).sum(dim=1)
        mind[s:e] = best_val.add_(xsq).clamp_min_(0.0)  # cancellation can dip below 0
    return labels, mind


def assign(
    x: torch.Tensor,
    centroids: torch.Tensor,
    metric: Metric = "l2",
    block_rows: int | None = None,
    block_cols: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of each row and the squared distance to it: (labels int64, min_sqdist).

    Distances are ||x||^2 - 2 x.c^T + ||c||^2 computed `block_rows` rows (and, for very many
    centroids, `block_cols` centroids) at a time, with the min/argmin taken per tile, so the
    n x k matrix never exists. Both default to a cache-sized tile (block_shape_for). For
    cosine, rows and centroids are normalised first and the distance is 2 - 2 cos. Works in
    x's dtype.
    """
    require(centroids.dim() == 2 and centroids.shape[1] == x.shape[1], "centroids",
            f"shape {tuple(centroids.shape)} does not match points of dimension {x.shape[1]}")
    centroids = centroids.to(device=x.device, dtype=x.dtype)
    if metric == "cosine":
        x = F.normalize(x, dim=1)
        centroids = F.normalize(centroids, dim=1)
    elif metric != "l2":
        raise ConfigError("metric", f"{metric!r} is not allowed; allowed values: 'l2', 'cosine'")
    rows, cols = block_shape_for(centroids.shape[0], x.dtype)
    if block_rows is not None:
        rows, cols = block_rows, centroids.shape[0] if block_cols is None else block_cols
    elif block_cols is not None:
        cols = block_cols
    return _assign_prepared(x, None, centroids, rows, cols)


def cluster_sums(x: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cluster row sums (k x d, float64) and counts (k, int64), with index_add_ and bincount.

    Sums are accumulated in float64 whatever x's dtype: they are added across shards and
    divided by large counts, where float32 would lose the digits that make the sharded and
    single-process results agree.
    """
    n, d = x.shape
    native = cluster_sums_f32(x, labels, k)
    if native is not None:
        return native
    sums = torch.zeros(k, d, dtype=torch.float64, device=x.device)
    if x.dtype == torch.float64:
        sums.index_add_(0, labels, x)
    else:
        rows = max(1, _SUM_BUFFER_BYTES // (8 * d))
        buf = torch.empty(min(rows, n), d, dtype=torch.float64, device=x.device)
        for s in range(0, n, rows):
            e = min(s + rows, n)
            chunk = buf[: e - s]
            chunk.copy_(x[s:e])
            sums.index_add_(0, labels[s:e], chunk)
    counts = torch.bincount(labels, minlength=k)
    return sums, counts


def shard_stats(
    x: torch.Tensor,
    centroids: torch.Tensor,
    metric: Metric = "l2",
    block_rows: int | None = None,
) -> tuple[torch.Tensor, ClusterStats]:
    """One shard's half of a Lloyd iteration: its labels (kept local) and its ClusterStats (sent)."""
    if metric == "cosine":  # normalise once here rather than in assign and again for the sums
        x, centroids, metric = F.normalize(x, dim=1), F.normalize(centroids, dim=1), "l2"
    labels, mind = assign(x, centroids, metric, block_rows)
    sums, counts = cluster_sums(x, labels, centroids.shape[0])
    return labels, ClusterStats(sums, counts, float(mind.sum(dtype=torch.float64)))


def lloyd_step(
    centroids: torch.Tensor,
    partial_stats: Sequence[ClusterStats | tuple[torch.Tensor, torch.Tensor]],
    metric: Metric = "l2",
) -> torch.Tensor:
    """New centroids from the shards' (sums, counts): sum / count; an empty cluster keeps its centroid.

    The result does not depend on how the rows were split into shards (up to float64 rounding
    of the additions), which is what lets a distributed run equal the single-process one.
    For cosine the mean is projected back to the unit sphere (spherical k-means).
    """
    require(len(partial_stats) > 0, "partial_stats", "no shard statistics to combine")
    sums = torch.zeros(centroids.shape, dtype=torch.float64, device=centroids.device)
    counts = torch.zeros(centroids.shape[0], dtype=torch.int64, device=centroids.device)
    for i, part in enumerate(partial_stats):
        s, c = part[0], part[1]
        require(tuple(s.shape) == tuple(centroids.shape), f"partial_stats[{i}]",
                f"sums of shape {tuple(s.shape)} do not match centroids {tuple(centroids.shape)}")
        sums += s.to(sums.device)
        counts += c.to(counts.device)
    filled = counts > 0
    new = centroids.to(torch.float64).clone()
    new[filled] = sums[filled] / counts[filled].unsqueeze(1).to(torch.float64)
    new = new.to(centroids.dtype)
    if metric == "cosine":
        new[filled] = F.normalize(new[filled], dim=1)
    return new


# --- initialisation --------------------------------------------------------------------------


def _sample_proportional(p: torch.Tensor, count: int, g: torch.Generator) -> torch.Tensor:
    """`count` indices drawn with replacement with probability proportional to p >= 0.

    Inverse-CDF on a float64 cumsum rather than torch.multinomial, which is capped at 2^24
    categories. The uniforms come from the CPU generator so draws do not depend on the device.
    If p is all zero (every point already a centre) the draw is uniform.
    """
    n = p.shape[0]
    cdf = p.to(torch.float64).cumsum(0)
    total = float(cdf[-1])
    if not total > 0.0:
        return torch.randint(n, (count,), generator=g).to(p.device)
    u = (torch.rand(count, generator=g, dtype=torch.float64) * total).to(p.device)
    return torch.searchsorted(cdf, u, right=True).clamp_max_(n - 1)


def kmeans_plusplus(
    x: torch.Tensor,
    k: int,
    generator: torch.Generator,
    *,
    weights: torch.Tensor | None = None,
    n_candidates: int | None = None,
) -> torch.Tensor:
    """Greedy k-means++ (Arthur & Vassilvitskii 2007; greedy variant as in the paper's code).

    Each new centre: draw 2 + floor(ln k) candidates with probability proportional to
    w * D^2 (D = distance to the nearest chosen centre), keep the one that leaves the lowest
    potential sum(w * min(D^2, d^2)). `weights` makes it the weighted version k-means||
    reduces its candidates with. Returns k x d centroids in x's dtype, in L2 geometry.
    """
    check_k(k, x.shape[0])
    n = x.shape[0]
    w = torch.ones(n, dtype=x.dtype, device=x.device) if weights is None else weights.to(x.dtype)
    m = n_candidates if n_candidates is not None else 2 + int(math.log(k))
    x_sqnorm = row_sqnorms(x)
    chosen = torch.empty(k, dtype=torch.int64, device=x.device)
    taken = torch.zeros(n, dtype=torch.bool, device=x.device)
    chosen[0] = _sample_proportional(w, 1, generator)[0]
    taken[chosen[0]] = True
    c = x[chosen[0]]
    d2 = (x_sqnorm - 2.0 * (x @ c) + c @ c).clamp_min_(0.0)
    d2[chosen[0]] = 0.0  # exactly: the expanded form leaves rounding error that could redraw it
    for j in range(1, k):
        p = w * d2
        if not float(p.sum(dtype=torch.float64)) > 0.0:
            # Every weighted point already sits on a centre (k-means|| left fewer weighted
            # candidates than k, or few distinct points): the uniform fallback draws from the
            # points not chosen yet, preferring ones away from every centre, never a centre again.
            free = ~taken & (d2 > 0)
            p = (free if bool(free.any()) else ~taken).to(x.dtype)
        cand = _sample_proportional(p, m, generator)
        xc = x[cand]
        # n x m distances to all candidates in one thin GEMM
        dist = torch.addmm((xc * xc).sum(dim=1).unsqueeze(0), x, xc.t(), beta=1.0, alpha=-2.0)
        dist.add_(x_sqnorm.unsqueeze(1)).clamp_min_(0.0)
        new_d2 = torch.minimum(d2.unsqueeze(1), dist)
        best = int((w.unsqueeze(1) * new_d2).sum(dim=0).argmin())
        chosen[j] = cand[best]
        taken[chosen[j]] = True
        d2 = new_d2[:, best].contiguous()
        d2[chosen[j]] = 0.0
    return x[chosen].clone()


def kmeans_parallel(
    x: torch.Tensor,
    k: int,
    generator: torch.Generator,
    rounds: int = 5,
    oversampling: int | None = None,
    block_rows: int | None = None,
) -> torch.Tensor:
    """k-means|| (Bahmani et al. 2012): a few passes that each sample ~l points by D^2.

    Start from one uniform point; each round keeps every point independently with probability
    min(1, l * D^2 / sum D^2) and updates D^2 against the new candidates only, tracking which
    candidate is nearest to each point. The candidates, weighted by how many points they
    attract, are reduced to k centres with weighted k-means++. l defaults to 2k.
    """
    n = x.shape[0]
    check_k(k, n)
    ell = 2 * k if oversampling is None else oversampling
    require(ell >= 1, "oversampling", f"must be >= 1, got {ell}")
    require(rounds >= 1, "rounds", f"must be >= 1, got {rounds}")
    x_sqnorm = row_sqnorms(x)
    first = int(torch.randint(n, (1,), generator=generator))
    c = x[first]
    d2 = (x_sqnorm - 2.0 * (x @ c) + c @ c).clamp_min_(0.0)
    nearest = torch.zeros(n, dtype=torch.int64, device=x.device)
    picked = [torch.tensor([first], device=x.device)]
    n_cand = 1
    for _ in range(rounds):
        phi = float(d2.sum(dtype=torch.float64))
        if not phi > 0.0:
            break  # every point coincides with a candidate
        p = (d2.to(torch.float64) * (ell / phi)).clamp_max_(1.0)
        u = torch.rand(n, generator=generator, dtype=torch.float64).to(x.device)
        new = (u < p).nonzero().squeeze(1)  # D^2 = 0 (already a candidate) is never drawn again
        if new.numel() == 0:
            continue
        rows, cols = (block_rows, new.numel()) if block_rows is not None else block_shape_for(new.numel(), x.dtype)
        lab, dn = _assign_prepared(x, x_sqnorm, x[new], rows, cols)
        closer = dn < d2
        nearest[closer] = lab[closer] + n_cand
        d2 = torch.minimum(d2, dn)
        picked.append(new)
        n_cand += new.numel()
    idx = torch.cat(picked)
    if n_cand < k:
        # Too few candidates (tiny l or data with few distinct points): top up with random
        # non-candidates; they get no weight, so the reduction only uses them if it must.
        is_cand = torch.zeros(n, dtype=torch.bool, device=x.device)
        is_cand[idx] = True
        rest = (~is_cand).nonzero().squeeze(1)
        extra = rest[torch.randperm(rest.numel(), generator=generator)[: k - n_cand].to(x.device)]
        idx = torch.cat([idx, extra])
    weights = torch.bincount(nearest, minlength=idx.numel()).to(x.dtype)
    return kmeans_plusplus(x[idx], k, generator, weights=weights)


def auto_init(n: int, k: int, rounds: int = 5, oversampling: int | None = None) -> InitName:
    """The default initialisation for n points and k clusters (see AUTO_PARALLEL_FACTOR)."""
    ell = 2 * k if oversampling is None else oversampling
    return "kmeans||" if n >= AUTO_PARALLEL_FACTOR * (1 + rounds * ell) else "kmeans++"


# --- Lloyd -----------------------------------------------------------------------------------


def kmeans(
    x: torch.Tensor,
    k: int,
    *,
    iters: int = 50,
    tol: float = 1e-4,
    seed: int = 0,
    init: InitName | torch.Tensor = "auto",
    metric: Metric = "l2",
    dtype: DType | torch.dtype = "float32",
    block_rows: int | None = None,
) -> KMeansResult:
    """Single-process k-means: Lloyd iterations from k-means++/k-means|| or given centroids.

    Each iteration updates the centroids from the current assignment, then reassigns; it
    stops after `iters` updates or when the inertia changed by less than `tol` relative to
    the new inertia. The labels and inertia returned always belong to the returned centroids.
    `init` may be a k x d tensor (used as is, after dtype conversion and, for cosine,
    normalisation). Random choices draw from a generator derived from `seed`.
    """
    check_points(x)
    n, d = x.shape
    check_k(k, n)
    require(iters >= 0, "iters", f"must be >= 0, got {iters}")
    require(tol >= 0, "tol", f"must be >= 0, got {tol}")
    xp = prepare(x, metric, dtype)
    if isinstance(init, torch.Tensor):
        require(tuple(init.shape) == (k, d), "init", f"initial centroids of shape {tuple(init.shape)}, expected ({k}, {d})")
        check_points(init, "init")
        centroids = prepare(init.to(xp.device), metric, xp.dtype)
    else:
        require(init in ("auto", "kmeans++", "kmeans||"), "init",
                f"{init!r} is not allowed; allowed values: 'auto', 'kmeans++', 'kmeans||' or a k x d tensor")
        g = generator("cpu", seed, "kmeans-init")
        how = auto_init(n, k) if init == "auto" else init
        centroids = kmeans_plusplus(xp, k, g) if how == "kmeans++" else kmeans_parallel(xp, k, g, block_rows=block_rows)

    rows, cols = (block_rows, k) if block_rows is not None else block_shape_for(k, xp.dtype)
    x_sqnorm = row_sqnorms(xp)
    labels, mind = _assign_prepared(xp, x_sqnorm, centroids, rows, cols)
    inertia = float(mind.sum(dtype=torch.float64))
    n_iter = 0
    while n_iter < iters:
        centroids = lloyd_step(centroids, [cluster_sums(xp, labels, k)], metric)
        n_iter += 1
        labels, mind = _assign_prepared(xp, x_sqnorm, centroids, rows, cols)
        new_inertia = float(mind.sum(dtype=torch.float64))
        converged = abs(inertia - new_inertia) <= tol * new_inertia
        inertia = new_inertia
        if converged:
            break
    return KMeansResult(centroids=centroids, labels=labels, inertia=inertia, n_iter=n_iter)


__all__ = [
    "AUTO_PARALLEL_FACTOR",
    "ClusterStats",
    "KMeansResult",
    "assign",
    "auto_init",
    "block_rows_for",
    "block_shape_for",
    "check_k",
    "check_points",
    "cluster_sums",
    "kmeans",
    "kmeans_parallel",
    "kmeans_plusplus",
    "lloyd_step",
    "prepare",
    "row_sqnorms",
    "shard_stats",
]

"""Sharded k-means on Ray: each worker keeps its rows and their assignments resident.

One Lloyd iteration puts the centroids once (`ray.put`) and gets back, per worker, only the
k x d float64 sums, the k counts and the inertia (`curation.kmeans.shard_stats`). Selections
(resampling subsets, the balanced sample) come back as per-cluster candidates that are at
most the size of the selection, never an n-long vector. Random choices are hashed from row
ids (`core.seeding.hash_uniform`), so the result does not depend on how the rows are sharded.

Every worker method is a function of the shard and its arguments (the centroids and their
version number travel with each call), so a worker that dies is restarted by Ray, reloads its
shard from the same `Part`s, and the retried call returns what the lost one would have.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.config import ConfigError, require
from core.models import resolve_device
from core.runs import atomic_write, progress
from core.seeding import generator, hash_uniform
from curation.hierarchical import ranks_within_groups
from curation.kmeans import (
    ClusterStats,
    DType,
    InitName,
    Metric,
    _assign_prepared,
    auto_init,
    block_shape_for,
    check_k,
    cluster_sums,
    kmeans_plusplus,
    lloyd_step,
    prepare,
    row_sqnorms,
    rows_per_block,
    torch_dtype,
)
from curation.sources import Part, load_part, plan_shards

log = logging.getLogger("tailor.curation")

# k-means++ on more rows than this is too slow to be worth it (k sequential passes); the
# "kmeans++" init of a sharded run therefore runs on a uniform sample of this many rows.
INIT_SAMPLE = 100_000
# Rows per block when a worker hashes keys for all its rows (hash_uniform makes several
# temporaries per row).
_KEY_BLOCK = 1 << 18
KMEANS_PARALLEL_ROUNDS = 5


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    return _status_mb("VmHWM")


def _cpu_threads() -> int:
    """Threads for torch and the native kernels in this Ray actor: the CPUs Ray assigned to it.

    Ray sets OMP_NUM_THREADS for an actor only when the driver's environment lacks it, so a
    driver started with OMP_NUM_THREADS=2 gave *every* worker two threads: two workers on two
    cores ran four threads and an iteration took 1.7x longer than on one worker. And with
    OMP_NUM_THREADS=1, a worker that reserved 2 CPUs used one. The reservation is the truth.
    """
    import ray

    ctx = ray.get_runtime_context() if ray.is_initialized() else None
    if ctx is None or ctx.worker.mode != ray.WORKER_MODE:  # not an actor (a driver, a test): leave as is
        return torch.get_num_threads()
    cpus = ctx.get_assigned_resources().get("CPU")
    return max(1, int(cpus)) if cpus else 1


def _finite_rows(x: torch.Tensor, block_rows: int | None = None) -> torch.Tensor:
    """Which rows are all finite, in blocks: isfinite on all of x would allocate n x d bools
    (and a float |x| on the way)."""
    block_rows = block_rows or rows_per_block(x)
    out = torch.empty(x.shape[0], dtype=torch.bool)
    for s in range(0, x.shape[0], block_rows):
        out[s : s + block_rows] = torch.isfinite(x[s : s + block_rows]).all(dim=1)
    return out


def _concat_parts(loaded: list[np.ndarray]) -> np.ndarray:
    """One array from several parts, copied part by part into one buffer (np.concatenate would
    hold every memory-mapped part's pages resident at once, on top of the copy)."""
    if len(loaded) == 1:
        return loaded[0]
    out = np.empty((sum(r.shape[0] for r in loaded), loaded[0].shape[1]), dtype=loaded[0].dtype)
    at = 0
    for i, r in enumerate(loaded):
        out[at : at + r.shape[0]] = r
        at += r.shape[0]
        loaded[i] = None  # drop the map (and its resident pages) before reading the next part
    return out


def _node_id() -> str | None:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


class ShardWorker:
    """One shard of the points, resident on this worker's device (a Ray actor)."""

    def __init__(self, parts: list[Part], index: int, dtype: DType, metric: Metric, device: str):
        # The process as Ray started it (interpreter, torch, Ray): the fixed baseline that the
        # shard's memory is measured against.
        self.baseline_rss_mb = _status_mb("VmRSS")
        self.threads = _cpu_threads()
        torch.set_num_threads(self.threads)
        self.index = index
        self.device = resolve_device(device)
        loaded = [load_part(p) for p in parts]
        ids = np.concatenate([i for _, i in loaded])
        # A single .npy part stays a read-only memory map: the shard is paged in from the file,
        # and the page cache, not this process's heap, holds it.
        rows = _concat_parts([r for r, _ in loaded])
        del loaded
        with warnings.catch_warnings():  # memory maps and object-store rows are read-only; never written
            warnings.simplefilter("ignore", UserWarning)
            x = torch.from_numpy(np.ascontiguousarray(rows))
        require(x.is_floating_point(), "source", f"expected floating-point embeddings, got {x.dtype}")
        bad = ~_finite_rows(x)
        self.n_bad = int(bad.sum())
        self.first_bad = int(ids[bad.nonzero()[0, 0]]) if self.n_bad else None
        self.x = prepare(x, metric, dtype).to(self.device)
        # True when the rows are used in place from the file's map (no dtype change, no
        # normalisation, CPU): then the shard costs page cache, not this worker's heap.
        self.memory_mapped = isinstance(rows, np.memmap) and self.x.data_ptr() == rows.ctypes.data
        self.ids = torch.from_numpy(ids).to(self.device)
        self.sqnorm = row_sqnorms(self.x)
        self.shard_bytes = self.x.numel() * self.x.element_size()
        self._version: int | None = None
        self._labels = self._mind = None
        self._folded = 0  # k-means|| candidates folded into _d2/_nearest
        self._d2 = self._nearest = None

    def info(self) -> dict:
        return {"index": self.index, "n": self.x.shape[0], "d": self.x.shape[1], "n_bad": self.n_bad,
                "first_bad": self.first_bad, "shard_mb": self.shard_bytes / 2**20, "pid": os.getpid(),
                "device": str(self.device), "node": _node_id(), "threads": self.threads,
                "memory_mapped": self.memory_mapped}

    def memory(self) -> dict:
        """Peak resident set, the baseline before the shard was loaded, and the shard's size (MB)."""
        out = {"peak_rss_mb": _peak_rss_mb(), "baseline_rss_mb": self.baseline_rss_mb,
               "shard_mb": self.shard_bytes / 2**20, "node": _node_id()}
        if self.device.type == "cuda":
            out["peak_cuda_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        return out

    def _assign(self, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = centroids.to(device=self.device, dtype=self.x.dtype)
        rows, cols = block_shape_for(c.shape[0], self.x.dtype)
        return _assign_prepared(self.x, self.sqnorm, c, rows, cols)

    def _ensure(self, version: int, centroids: torch.Tensor) -> None:
        if self._version != version:
            self._labels, self._mind = self._assign(centroids)
            self._version = version

    def stats(self, version: int, centroids: torch.Tensor) -> ClusterStats:
        """Assign to `centroids` (kept as the labels of `version`) and return this shard's stats."""
        self._ensure(version, centroids)
        sums, counts = cluster_sums(self.x, self._labels, centroids.shape[0])
        return ClusterStats(sums.cpu(), counts.cpu(), float(self._mind.sum(dtype=torch.float64)))

    def select(
        self, version: int, centroids: torch.Tensor, limits: torch.Tensor | int, keys_fn: Callable
    ) -> dict[str, torch.Tensor]:
        """This shard's rows that rank below their cluster's limit by keys_fn(ids, sqdist).

        A row in a cluster's global top-`limit` is in its shard's top-`limit`, so the union of
        these candidates holds the global selection.
        """
        self._ensure(version, centroids)
        keys = self._keys(keys_fn, self._mind)
        lim = limits if isinstance(limits, int) else limits.to(self.device)[self._labels]
        keep = (ranks_within_groups(self._labels, keys) < lim).nonzero().squeeze(1)
        return {"ids": self.ids[keep].cpu(), "labels": self._labels[keep].cpu(), "keys": keys[keep].cpu(),
                "sqdist": self._mind[keep].cpu()}

    def _keys(self, keys_fn: Callable, sqdist: torch.Tensor | None) -> torch.Tensor:
        """keys_fn(ids, sqdist) for every row, a block at a time (keys are per row: hashed from the
        id, or the distance), so its temporaries are block-sized rather than n-long."""
        out = None
        for s in range(0, self.ids.shape[0], _KEY_BLOCK):
            k = keys_fn(self.ids[s : s + _KEY_BLOCK], None if sqdist is None else sqdist[s : s + _KEY_BLOCK])
            if out is None:
                out = torch.empty(self.ids.shape[0], dtype=k.dtype, device=self.device)
            out[s : s + _KEY_BLOCK] = k
        return out

    def smallest(self, count: int, keys_fn: Callable) -> dict[str, torch.Tensor]:
        """The `count` rows with the smallest keys_fn(ids, None): ids and keys."""
        keys = self._keys(keys_fn, None)
        idx = torch.sort(keys, stable=True).indices[:count]
        return {"ids": self.ids[idx].cpu(), "keys": keys[idx].cpu()}

    def rows(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """The rows (as held: prepared, in the run's dtype) of those `ids` this shard owns."""
        mask = torch.isin(self.ids, ids.to(self.device))
        return {"ids": self.ids[mask].cpu(), "rows": self.x[mask].cpu()}

    def labels(self, version: int, centroids: torch.Tensor) -> dict[str, torch.Tensor]:
        self._ensure(version, centroids)
        return {"ids": self.ids.cpu(), "labels": self._labels.cpu(), "sqdist": self._mind.cpu()}

    def write_assignments(self, version: int, centroids: torch.Tensor, path: str) -> str:
        """Write (ids, labels, sqdist) of this shard to `path` (.npz) atomically."""
        self._ensure(version, centroids)
        # streamed into the temporary file, not through an in-memory buffer and its copy,
        # which cost 40 bytes a row at the worker's peak
        atomic_write(path, lambda f: np.savez(f, ids=self.ids.cpu().numpy(), labels=self._labels.cpu().numpy(),
                                              sqdist=self._mind.cpu().numpy()))
        return path

    # --- k-means|| (Bahmani et al. 2012), with every draw hashed from the row id -----------

    def kpar_first(self, seed: int) -> dict[str, torch.Tensor]:
        """This shard's row with the smallest hashed key: the global minimum is the first centre."""
        keys = hash_uniform(self.ids, seed, "kmeans||-first")
        i = int(torch.argmin(keys))
        # clone: a view (x[i]) pickles its whole storage, and this sent every shard's rows, ids
        # and keys to the driver (2.6 GB of driver peak at 3M points, growing with n)
        return {"key": keys[i].clone().cpu(), "id": self.ids[i].clone().cpu(), "row": self.x[i].clone().cpu()}

    def kpar_reset(self) -> None:
        self._folded, self._d2, self._nearest = 0, None, None

    def kpar_fold(self, candidates: torch.Tensor) -> float:
        """Fold the candidates not yet seen into D^2 and the nearest candidate; return sum D^2.

        After a restart nothing has been folded, and all candidates are folded at once: D^2 is
        a minimum, so the result is the same.
        """
        c = candidates.to(device=self.device, dtype=self.x.dtype)
        if self._folded == 0:
            self._d2 = torch.full((self.x.shape[0],), float("inf"), dtype=self.x.dtype, device=self.device)
            self._nearest = torch.zeros(self.x.shape[0], dtype=torch.int64, device=self.device)
        new = c[self._folded :]
        if new.shape[0]:
            rows, cols = block_shape_for(new.shape[0], self.x.dtype)
            lab, dn = _assign_prepared(self.x, self.sqnorm, new, rows, cols)
            closer = dn < self._d2
            self._nearest[closer] = lab[closer] + self._folded
            self._d2 = torch.minimum(self._d2, dn)
            self._folded = c.shape[0]
        return float(self._d2.sum(dtype=torch.float64))

    def kpar_sample(self, candidates: torch.Tensor, scale: float, seed: int, round_: int) -> dict[str, torch.Tensor]:
        """Rows kept with probability min(1, scale * D^2), scale = l / sum D^2 (global)."""
        self.kpar_fold(candidates)
        take = []
        for s in range(0, self.x.shape[0], _KEY_BLOCK):  # in blocks: the hashing's temporaries are n-long
            p = (self._d2[s : s + _KEY_BLOCK].to(torch.float64) * scale).clamp_max_(1.0)
            u = hash_uniform(self.ids[s : s + _KEY_BLOCK], seed, "kmeans||", round_).to(self.device)
            take.append((u < p).nonzero().squeeze(1) + s)
        take = torch.cat(take)
        return {"ids": self.ids[take].cpu(), "rows": self.x[take].cpu()}

    def kpar_weights(self, candidates: torch.Tensor) -> torch.Tensor:
        """How many of this shard's rows each candidate is nearest to."""
        self.kpar_fold(candidates)
        return torch.bincount(self._nearest, minlength=candidates.shape[0]).cpu()


@dataclass
class ShardedKMeansResult:
    centroids: torch.Tensor  # k x d (CPU), in the run's dtype
    inertia: float
    n_iter: int
    counts: torch.Tensor  # k: rows per cluster
    version: int  # the workers' labels are those of this version of the centroids


def _merge(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate per-worker candidates and order them by id, the order a single process has."""
    out = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
    order = torch.sort(out["ids"], stable=True).indices
    return {key: v[order] for key, v in out.items()}


class ShardedPoints:
    """The points of one level, sharded across `num_workers` Ray actors.

    `source`: a `.npy` path, a folder of `.npy`/`.parquet` shards, an array, or a Ray Dataset.
    Each worker asks for `num_cpus`/`num_gpus` and runs on `device` ("auto": CUDA if it got a
    GPU). Workers are restarted when they die (`max_restarts=-1`) and calls retried.
    """

    def __init__(
        self,
        source: Any,
        num_workers: int,
        *,
        metric: Metric = "l2",
        dtype: DType = "float32",
        device: str = "auto",
        num_cpus: float = 1,
        num_gpus: float = 0,
        column: str = "embedding",
    ):
        import ray

        require(metric in ("l2", "cosine"), "metric", f"{metric!r} is not allowed; allowed values: 'l2', 'cosine'")
        self.dtype = torch_dtype(dtype)
        self.metric = metric
        groups, self.n, self.d = plan_shards(source, num_workers, column)
        # Held for the workers' lifetime: a restarted worker reloads its shard from these parts,
        # and for in-memory sources they hold the object refs of the shards.
        self._parts = groups
        self._spawn = (dtype, metric, device, num_cpus, num_gpus)
        self.workers: list = []
        self._version = 0
        self.resume()

    def resume(self) -> None:
        """Start the workers (again, after suspend): each loads its shard from its parts."""
        import ray

        dtype, metric, device, num_cpus, num_gpus = self._spawn
        cls = ray.remote(ShardWorker).options(
            num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=-1, max_task_retries=-1, scheduling_strategy="SPREAD"
        )
        self.workers = [cls.remote(parts, i, dtype, metric, device) for i, parts in enumerate(self._parts)]
        try:
            self.infos = self.call("info")
            n_bad = sum(i["n_bad"] for i in self.infos)
            if n_bad:
                first = min(i["first_bad"] for i in self.infos if i["n_bad"])
                raise ConfigError("source", f"{n_bad} of {self.n} rows contain NaN or inf (first at id {first})")
        except BaseException:
            self.close()
            raise

    def call(self, method: str, *args: Any) -> list:
        import ray

        return ray.get([getattr(w, method).remote(*args) for w in self.workers])

    def put_centroids(self, centroids: torch.Tensor) -> tuple[int, Any]:
        """A new version of the centroids, put in the object store once for all workers."""
        import ray

        self._version += 1
        return self._version, ray.put(centroids.cpu())

    def close(self) -> None:
        import ray

        for w in self.workers:
            ray.kill(w, no_restart=True)
        self.workers = []

    def suspend(self) -> None:
        """Free the workers' CPUs and GPUs (another level's workers need them); resume() reloads.

        Nothing is lost: every worker call carries the centroids it needs."""
        self.close()

    def __enter__(self) -> "ShardedPoints":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- building blocks --------------------------------------------------------------------

    def stats(self, centroids: torch.Tensor) -> tuple[int, ClusterStats]:
        """One Lloyd half-step on every shard: (version of `centroids`, the summed statistics)."""
        version, ref = self.put_centroids(centroids)
        parts = self.call("stats", version, ref)
        sums, counts = parts[0].sums.clone(), parts[0].counts.clone()
        for p in parts[1:]:
            sums += p.sums
            counts += p.counts
        return version, ClusterStats(sums, counts, float(sum(p.inertia for p in parts)))

    def select(
        self, version: int, centroids: torch.Tensor, limits: torch.Tensor | int, keys_fn: Callable
    ) -> dict[str, torch.Tensor]:
        """The rows that rank below their cluster's limit by keys_fn(ids, sqdist), over all
        shards, ordered by id: ids, labels, keys, sqdist. `version` names `centroids` (workers
        that hold its labels reuse them)."""
        import ray

        cand = _merge(self.call("select", version, ray.put(centroids.cpu()), limits, keys_fn))
        lim = limits if isinstance(limits, int) else limits[cand["labels"]]
        keep = ranks_within_groups(cand["labels"], cand["keys"]) < lim
        return {key: v[keep] for key, v in cand.items()}

    def smallest(self, count: int, keys_fn: Callable) -> dict[str, torch.Tensor]:
        cand = _merge(self.call("smallest", count, keys_fn))
        order = torch.sort(cand["keys"], stable=True).indices[:count]
        return {key: v[order] for key, v in cand.items()}

    def labels(self, version: int, centroids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every row's label and squared distance, by id: n-long, for tests and small data only."""
        import ray

        return _merge(self.call("labels", version, ray.put(centroids.cpu())))

    def write_assignments(self, version: int, centroids: torch.Tensor, folder: str | Path) -> list[str]:
        """Each worker writes its rows' (ids, labels, sqdist) to folder/assign-<worker>.npz."""
        import ray

        ref = ray.put(centroids.cpu())
        return ray.get([w.write_assignments.remote(version, ref, str(Path(folder) / f"assign-{i:05d}.npz"))
                        for i, w in enumerate(self.workers)])

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """The rows of `ids`, in the order given."""
        got = _merge(self.call("rows", ids))
        pos = torch.searchsorted(got["ids"], ids)
        require(bool((got["ids"][pos.clamp_max(len(got['ids']) - 1)] == ids).all()), "ids", "unknown row ids")
        return got["rows"][pos]

    def memory(self) -> list[dict]:
        return self.call("memory")

    # --- initialisation ---------------------------------------------------------------------

    def init_kmeans_parallel(self, k: int, seed: int, rounds: int = KMEANS_PARALLEL_ROUNDS,
                             oversampling: int | None = None) -> torch.Tensor:
        """k-means|| over the shards: `rounds` passes of D^2 sampling, then weighted k-means++."""
        import ray

        ell = 2 * k if oversampling is None else oversampling
        self.call("kpar_reset")
        firsts = self.call("kpar_first", seed)
        first = min(firsts, key=lambda f: (float(f["key"]), int(f["id"])))
        cand, cand_ids = first["row"].unsqueeze(0), first["id"].reshape(1)
        for j in range(rounds):
            ref = ray.put(cand)
            phi = sum(self.call("kpar_fold", ref))
            if not phi > 0.0:
                break
            new = _merge(self.call("kpar_sample", ref, ell / phi, seed, j))
            cand, cand_ids = torch.cat([cand, new["rows"]]), torch.cat([cand_ids, new["ids"]])
        if cand.shape[0] < k:  # too few distinct rows drawn: top up, with no weight
            extra = self.smallest(k, partial(_topup_keys, seed=seed))
            fresh = ~torch.isin(extra["ids"], cand_ids)
            more = extra["ids"][fresh][: k - cand.shape[0]]
            cand, cand_ids = torch.cat([cand, self.rows(more)]), torch.cat([cand_ids, more])
        weights = sum(self.call("kpar_weights", ray.put(cand)))
        weights = torch.cat([weights, torch.zeros(cand.shape[0] - weights.numel(), dtype=weights.dtype)])
        return kmeans_plusplus(cand, k, generator("cpu", seed, "kmeans-init"), weights=weights.to(cand.dtype))

    def init_kmeans_plusplus(self, k: int, seed: int, sample: int = INIT_SAMPLE) -> torch.Tensor:
        """Greedy k-means++ on a uniform sample of at most `sample` rows (all of them when n is
        smaller: then it is exactly the single-process k-means++ of `curation.kmeans.kmeans`)."""
        if self.n <= sample:
            rows = self.rows(_merge(self.call("smallest", self.n, _id_keys))["ids"])
        else:
            picked = self.smallest(sample, partial(_sample_keys, seed=seed))["ids"]
            rows = self.rows(torch.sort(picked).values)
        return kmeans_plusplus(rows, k, generator("cpu", seed, "kmeans-init"))


def _id_keys(ids: torch.Tensor, _sqdist: Any) -> torch.Tensor:
    return ids.to(torch.float64)


def _sample_keys(ids: torch.Tensor, _sqdist: Any, seed: int) -> torch.Tensor:
    return hash_uniform(ids, seed, "init-sample")


def _topup_keys(ids: torch.Tensor, _sqdist: Any, seed: int) -> torch.Tensor:
    return hash_uniform(ids, seed, "kmeans||-topup")


def kmeans_sharded(
    points: ShardedPoints,
    k: int,
    *,
    iters: int = 50,
    tol: float = 1e-4,
    seed: int = 0,
    init: InitName | torch.Tensor = "auto",
    desc: str = "k-means",
) -> ShardedKMeansResult:
    """Lloyd iterations over the shards, the same iteration and stopping rule as `kmeans`.

    With the same initial centroids the result equals `curation.kmeans.kmeans` on all the
    rows (up to float64 rounding of the sums, which are added shard by shard).
    """
    check_k(k, points.n)
    require(iters >= 0, "iters", f"must be >= 0, got {iters}")
    require(tol >= 0, "tol", f"must be >= 0, got {tol}")
    if isinstance(init, torch.Tensor):
        require(tuple(init.shape) == (k, points.d), "init",
                f"initial centroids of shape {tuple(init.shape)}, expected ({k}, {points.d})")
        centroids = prepare(init, points.metric, points.dtype)
    else:
        require(init in ("auto", "kmeans++", "kmeans||"), "init",
                f"{init!r} is not allowed; allowed values: 'auto', 'kmeans++', 'kmeans||' or a k x d tensor")
        how = auto_init(points.n, k) if init == "auto" else init
        centroids = (points.init_kmeans_plusplus(k, seed) if how == "kmeans++"
                     else points.init_kmeans_parallel(k, seed))
    version, stats = points.stats(centroids)
    inertia, n_iter = stats.inertia, 0
    bar = progress(range(iters), desc=desc, leave=False)
    for _ in bar:
        centroids = lloyd_step(centroids, [stats], points.metric)
        n_iter += 1
        version, stats = points.stats(centroids)
        converged = abs(inertia - stats.inertia) <= tol * stats.inertia
        inertia = stats.inertia
        bar.set_postfix(inertia=f"{inertia:.4g}")
        if converged:
            break
    bar.close()
    return ShardedKMeansResult(centroids, inertia, n_iter, stats.counts, version)


__all__ = ["INIT_SAMPLE", "ShardWorker", "ShardedKMeansResult", "ShardedPoints", "kmeans_sharded"]

"""Hierarchical k-means with resampling and balanced sampling over sharded points (Ray).

The same algorithm as `curation.hierarchical` and `curation.sampling`, run on
`curation.distributed.ShardedPoints`: level 1 on the embedding shards, level t > 1 on the
centroids of level t - 1 (in the driver when they are small, else sharded the same way). With
`out_dir`, every level writes its centroids, counts and per-shard assignments before the next
starts, and a finished level whose config matches is loaded instead of recomputed (resume).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.config import ConfigError, require
from core.runs import atomic_write
from core.seeding import derive_seed
from curation.distributed import ShardedPoints, kmeans_sharded
from curation.hierarchical import (LevelSpec, check_levels, default_sample_size, kmeans_with_resampling, resample_keys,
                                   top_up_keys)
from curation.kmeans import DType, InitName, Metric, kmeans
from curation.sampling import LeafStrategy, leaf_keys, quotas_from_sizes

log = logging.getLogger("tailor.curation")


@dataclass
class LevelRecord:
    centroids: torch.Tensor  # k_t x d
    counts: torch.Tensor  # inputs of level t per cluster (points for t = 0, clusters of t - 1 above)
    assignments: torch.Tensor | None  # t >= 1: the level-t cluster of each level t-1 cluster; t = 0: in the shards
    inertia: float
    seconds: float
    resumed: bool = False


@dataclass
class KMeansOptions:
    iters: int = 50
    tol: float = 1e-4
    init: InitName = "auto"
    metric: Metric = "l2"
    dtype: DType = "float32"


def _topup(ids: torch.Tensor, _sqdist: Any, seed: int, step: int) -> torch.Tensor:
    return top_up_keys(ids, seed, step)


def run_level(points: ShardedPoints, spec: LevelSpec, seed: int, opts: KMeansOptions, name: str) -> tuple[torch.Tensor, int, Any]:
    """One level on sharded inputs: k-means, then resampling_steps - 1 resampling steps.

    Returns (centroids, version of the workers' final labels, their ClusterStats). `seed` is
    the level's seed, as `curation.hierarchical.kmeans_with_resampling` takes it.
    """
    k = spec.k
    r = default_sample_size(spec, points.n)
    res = kmeans_sharded(points, k, iters=opts.iters, tol=opts.tol, seed=derive_seed(seed, "step", 0),
                         init=opts.init, desc=f"{name} step 0")
    centroids, version = res.centroids, res.version
    stats = None
    for step in range(1, spec.resampling_steps):
        # r inputs per cluster (at most k * r rows move), ordered by id like a single process's
        sel = points.select(version, centroids, r, partial(resample_keys, strategy=spec.sample_strategy,
                                                           seed=seed, step=step))
        subset = sel["ids"]
        if subset.numel() < k:  # empty clusters: top up with other inputs (as the single-process code)
            extra = points.smallest(k, partial(_topup, seed=seed, step=step))["ids"]
            subset = torch.cat([subset, extra[~torch.isin(extra, subset)][: k - subset.numel()]])
        rows = points.rows(subset)
        centroids = kmeans(rows, k, seed=derive_seed(seed, "step", step), iters=opts.iters, tol=opts.tol,
                           init=opts.init, metric=opts.metric, dtype=opts.dtype).centroids
        version, stats = points.stats(centroids)
        log.info("%s step %d: %d resampled inputs, inertia %.6g", name, step, subset.numel(), stats.inertia)
    if stats is None:
        from curation.kmeans import ClusterStats

        stats = ClusterStats(torch.empty(0), res.counts, res.inertia)
    return centroids, version, stats


def run_level_local(inputs: torch.Tensor, spec: LevelSpec, seed: int, opts: KMeansOptions,
                    folder: Path | None = None) -> LevelRecord:
    """One level t > 0 on the centroids of level t - 1, in this process: `run_level`'s result
    (both are `kmeans_with_resampling`), with its assignments written as one shard's file."""
    res = kmeans_with_resampling(inputs, spec, seed=seed, iters=opts.iters, tol=opts.tol, init=opts.init,
                                 metric=opts.metric, dtype=opts.dtype)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        ids = np.arange(inputs.shape[0], dtype=np.int64)
        atomic_write(folder / "assign-00000.npz", lambda f: np.savez(f, ids=ids, labels=res.assignments.numpy(),
                                                                     sqdist=res.sqdist.numpy()))
    counts = torch.bincount(res.assignments, minlength=spec.k)
    return LevelRecord(res.centroids, counts, res.assignments, float(res.sqdist.sum()), 0.0)


def fingerprint(n: int, d: int, levels: list[LevelSpec], t: int, seed: int, opts: KMeansOptions) -> str:
    """What level t's result depends on: the input size, levels 0..t, the seed and options."""
    blob = json.dumps({"n": n, "d": d, "levels": [asdict(s) for s in levels[: t + 1]], "seed": seed,
                       "opts": asdict(opts)}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _save_level(folder: Path, rec: LevelRecord, meta: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, tensor in (("centroids", rec.centroids), ("counts", rec.counts)):
        import io

        buf = io.BytesIO()
        np.save(buf, tensor.numpy())
        atomic_write(folder / f"{name}.npy", buf.getvalue())
    # level.json last: its presence is what marks the level finished
    atomic_write(folder / "level.json", json.dumps(meta, indent=2))


def read_assignments(folder: Path) -> dict[str, torch.Tensor]:
    """The per-shard assignment files of a level, merged and ordered by id."""
    files = sorted(Path(folder).glob("assign-*.npz"))
    require(len(files) > 0, "out_dir", f"{folder} has no assignment files")
    parts = [np.load(f) for f in files]
    ids = np.concatenate([p["ids"] for p in parts])
    order = np.argsort(ids, kind="stable")
    return {key: torch.from_numpy(np.concatenate([p[key] for p in parts])[order]) for key in ("ids", "labels", "sqdist")}


def _load_level(folder: Path, expect: str, t: int) -> LevelRecord | None:
    meta_path = folder / "level.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    if meta["fingerprint"] != expect:
        raise ConfigError(f"levels[{t}]", f"{folder} holds a level computed under a different config "
                                          f"(fingerprint {meta['fingerprint']}, this config {expect}); "
                                          "start a new run directory")
    assignments = read_assignments(folder)["labels"] if t > 0 else None
    return LevelRecord(torch.from_numpy(np.load(folder / "centroids.npy")), torch.from_numpy(np.load(folder / "counts.npy")),
                       assignments, meta["inertia"], meta["seconds"], resumed=True)


def hierarchical_kmeans_sharded(
    points: ShardedPoints,
    levels: list[LevelSpec],
    seed: int,
    opts: KMeansOptions | None = None,
    out_dir: str | Path | None = None,
    worker_options: dict | None = None,
    driver_level_mb: float = 0.0,
) -> list[LevelRecord]:
    """The tree of `curation.hierarchical.hierarchical_kmeans` over sharded points.

    Level 0 runs on `points` (left open: its workers keep the final labels for sampling);
    level t > 0 on the centroids of level t-1, sharded over as many workers with
    `worker_options` (ShardedPoints keyword arguments). With `out_dir`, finished levels are
    written to out_dir/level<t>/ and skipped on a rerun. A level t > 0 whose inputs take at
    most `driver_level_mb` MB runs in this process instead (`run_level_local`): the same result,
    without stopping the points' workers, starting others and reloading the shards after.
    """
    opts = opts or KMeansOptions()
    check_levels(levels, points.n)
    worker_options = dict(worker_options or {})
    num_workers = len(points.workers)
    driver_bytes = driver_level_mb * 2**20
    records: list[LevelRecord] = []
    for t, spec in enumerate(levels):
        fp = fingerprint(points.n, points.d, levels, t, seed, opts)
        folder = Path(out_dir) / f"level{t}" if out_dir is not None else None
        rec = _load_level(folder, fp, t) if folder is not None else None
        if rec is not None:
            log.info("level %d: loaded from %s (k=%d)", t + 1, folder, spec.k)
            records.append(rec)
            continue
        start = time.perf_counter()
        n_inputs = points.n if t == 0 else records[-1].centroids.shape[0]
        in_driver = t > 0 and records[-1].centroids.numel() * records[-1].centroids.element_size() <= driver_bytes
        if in_driver:
            rec = run_level_local(records[-1].centroids, spec, derive_seed(seed, "level", t), opts, folder)
        else:
            if t > 0 and points.workers:
                points.suspend()  # the upper levels' workers take the same resources as the points'
            if t == 0 and not points.workers:
                points.resume()
            inputs = points if t == 0 else ShardedPoints(records[-1].centroids, num_workers, metric=opts.metric,
                                                          dtype=opts.dtype, **worker_options)
            try:
                centroids, version, stats = run_level(inputs, spec, derive_seed(seed, "level", t), opts,
                                                      f"level {t + 1}")
                if folder is not None:
                    folder.mkdir(parents=True, exist_ok=True)
                    inputs.write_assignments(version, centroids, folder)
                assignments = inputs.labels(version, centroids)["labels"] if t > 0 else None
            finally:
                if t > 0:
                    inputs.close()
            rec = LevelRecord(centroids, stats.counts, assignments, stats.inertia, 0.0)
        rec.seconds = time.perf_counter() - start
        where = "driver" if in_driver else "workers"
        if folder is not None:
            _save_level(folder, rec, {"level": t, "k": spec.k, "fingerprint": fp, "inertia": rec.inertia,
                                      "seconds": rec.seconds, "inputs": n_inputs, "where": where})
        log.info("level %d: k=%d on %d inputs (%s), inertia %.6g, %.1f s", t + 1, spec.k, n_inputs, where,
                 rec.inertia, rec.seconds)
        records.append(rec)
    if not points.workers:
        points.resume()  # left open for sampling, as the caller gave it
    return records


def level_point_sizes(records: list[LevelRecord]) -> list[torch.Tensor]:
    """Size of every cluster of every level in points (level 0's counts, summed up the tree)."""
    sizes = [records[0].counts.to(torch.int64)]
    for rec in records[1:]:
        s = torch.zeros(rec.centroids.shape[0], dtype=torch.int64)
        sizes.append(s.index_add_(0, rec.assignments, sizes[-1]))
    return sizes


def balanced_sample_sharded(
    points: ShardedPoints,
    records: list[LevelRecord],
    target: int,
    seed: int,
    strategy: LeafStrategy = "random",
) -> dict[str, torch.Tensor]:
    """`curation.sampling.balanced_sample` over the shards: the ids (sorted) of exactly `target`
    points, with their level-1 cluster (`labels`). Only the selection leaves the workers."""
    sizes = level_point_sizes(records)
    quotas = quotas_from_sizes(sizes, [r.assignments for r in records[1:]], target, seed)
    version, _ = points.put_centroids(records[0].centroids)
    return points.select(version, records[0].centroids, quotas[0], partial(leaf_keys, strategy=strategy, seed=seed))


__all__ = ["KMeansOptions", "LevelRecord", "balanced_sample_sharded", "hierarchical_kmeans_sharded",
           "level_point_sizes", "read_assignments", "run_level", "run_level_local"]

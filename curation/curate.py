"""The curation job's entry function: texts -> embeddings -> hierarchical k-means -> balanced sample.

`check_inputs` runs before Ray starts (sources, sizes, k per level, target); `curate` runs in
a Ray session and writes everything into the run directory. Each stage leaves its result
there (embeddings/, levels/level<t>/) before the next starts, and a rerun on the same
directory (`--resume`) skips what is finished.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.config import ConfigError, require
from core.data import load_texts
from core.runs import RunDir, atomic_write
from curation.config import CurationConfig
from curation.hierarchical import check_levels
from curation.sources import file_shapes

log = logging.getLogger("tailor.curation")


@dataclass
class Pool:
    texts: list[str] | None  # None when starting from precomputed embeddings
    sources: list[str] | None  # the source name of each text
    n: int


def load_pool(cfg: CurationConfig) -> Pool:
    """The texts to curate (ids are positions in this concatenation), or the embeddings' size."""
    if cfg.embeddings is not None:
        try:
            shapes = file_shapes(cfg.embeddings, cfg.embedding_column)
        except ConfigError as err:
            key = "embedding_column" if err.key == "column" else "embeddings"
            raise ConfigError(key, str(err).split(": ", 1)[-1]) from None
        return Pool(None, None, sum(n for _, n, _ in shapes))
    texts: list[str] = []
    sources: list[str] = []
    for i, src in enumerate(cfg.data):
        try:
            got = load_texts(src.name, src.text_column, src.limit)
        except ConfigError as err:
            raise ConfigError(f"data[{i}].{err.key}", str(err).split(": ", 1)[-1]) from None
        texts += got
        sources += [src.name] * len(got)
    return Pool(texts, sources, len(texts))


def check_inputs(cfg: CurationConfig, pool: Pool) -> None:
    """What can be checked before Ray starts: every level's k against its inputs, the target."""
    try:
        check_levels(cfg.kmeans.levels, pool.n)
    except ConfigError as err:
        raise ConfigError(f"kmeans.{err.key}", str(err).split(": ", 1)[-1]) from None
    require(cfg.sample.target <= pool.n, "sample.target",
            f"target={cfg.sample.target} is larger than the pool of {pool.n} points")


def embedding_blocks(n: int, batch_size: int) -> int:
    """Blocks (files) of embeddings for n texts: about one per batch, so that every embedding
    actor gets work and a parquet file (never cut between workers) stays small; at most 64."""
    return max(1, min(64, n // max(1, batch_size)))


def embed_pool(cfg: CurationConfig, pool: Pool, run: RunDir) -> Path:
    """Embed the texts with Ray Data, or in this process with embed.concurrency 0 (once: an
    existing run's embeddings/ is reused)."""
    import ray

    from core.encoders import embed_dataset

    folder = run.file("embeddings")
    if folder.is_dir():
        log.info("embeddings: reusing %s", folder)
        return folder
    e = cfg.embed
    if e.concurrency == 0:
        start = time.perf_counter()
        write_embeddings_local(pool.texts, e, folder)
        log.info("embedded %d texts with %s in the driver in %.1f s", pool.n, e.model, time.perf_counter() - start)
        return folder
    ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(pool.texts)],
                             override_num_blocks=embedding_blocks(pool.n, e.batch_size))
    start = time.perf_counter()
    write_embeddings(embed_dataset(ds, e.model, e.max_length, e.batch_size, e.concurrency, e.num_cpus, e.num_gpus, e.device),
                     folder)
    log.info("embedded %d texts with %s in %.1f s", pool.n, e.model, time.perf_counter() - start)
    return folder


def write_embeddings(ds: Any, folder: str | Path) -> Path:
    """Write the embedded dataset's (id, embedding) as parquet shards into `folder`, atomically:
    into a sibling temporary folder first, renamed when complete, so a crash never leaves a
    half-written folder that a rerun would take for finished."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    ds.select_columns(["id", "embedding"]).write_parquet(str(tmp))
    tmp.rename(folder)
    return folder


def write_embeddings_local(texts: list[str], e: Any, folder: str | Path) -> Path:
    """Embed `texts` in this process in batches of e.batch_size and write the same (id, embedding)
    parquet that `write_embeddings` writes, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.encoders import Embedder

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    emb = Embedder(e.model, e.max_length, e.device).embed_all(texts, e.batch_size, desc="embed")
    ids = np.arange(len(texts), dtype=np.int64)
    # as many files as the Ray Data path writes blocks: a parquet file is never cut between workers
    for i, part in enumerate(np.array_split(ids, embedding_blocks(len(texts), e.batch_size))):
        rows = emb[part]
        pq.write_table(pa.table({"id": pa.array(part), "embedding": pa.FixedSizeListArray.from_arrays(
            pa.array(rows.reshape(-1)), rows.shape[1])}), tmp / f"part-{i:05d}.parquet")
    tmp.rename(folder)
    return folder


def write_selection(path: Path, sel: dict[str, torch.Tensor], pool: Pool, fmt: str) -> Path:
    ids = sel["ids"].numpy()
    rows = [{"id": int(i), "cluster": int(c),
             **({"source": pool.sources[i], "text": pool.texts[i]} if pool.texts is not None else {})}
            for i, c in zip(ids, sel["labels"].numpy())]
    if fmt == "jsonl":
        return atomic_write(path.with_suffix(".jsonl"), "".join(json.dumps(r) + "\n" for r in rows))
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return atomic_write(path.with_suffix(".parquet"), buf.getvalue())


def curate(cfg: CurationConfig, pool: Pool, run: RunDir) -> dict:
    """Run the whole job in `run` (Ray must be initialised); returns the summary's numbers."""
    from curation.distributed import ShardedPoints
    from curation.levels import KMeansOptions, balanced_sample_sharded, hierarchical_kmeans_sharded, level_point_sizes
    from curation.report import write_report

    source = cfg.embeddings if cfg.embeddings is not None else embed_pool(cfg, pool, run)
    w, km = cfg.workers, cfg.kmeans
    worker_options = dict(device=w.device, num_cpus=w.num_cpus, num_gpus=w.num_gpus)
    opts = KMeansOptions(iters=km.iters, tol=km.tol, init=km.init, metric=km.metric, dtype=km.dtype)
    start = time.perf_counter()
    with ShardedPoints(source, w.num_workers, metric=km.metric, dtype=km.dtype, column=cfg.embedding_column,
                       **worker_options) as points:
        placement = points.call("info")
        run.write_json("workers.json", placement)  # which node holds which shard: for a cluster's user
        log.info("%d points of dimension %d on %d workers, %d node(s)", points.n, points.d, len(points.workers),
                 len({w["node"] for w in placement}))
        records = hierarchical_kmeans_sharded(points, km.levels, cfg.seed, opts, run.file("levels"), worker_options,
                                              driver_level_mb=w.driver_level_mb)
        sel = balanced_sample_sharded(points, records, cfg.sample.target, cfg.seed, cfg.sample.strategy)
        memory = points.memory()
    out = write_selection(run.file("selected"), sel, pool, cfg.sample.output)
    sizes = level_point_sizes(records)
    after = [torch.bincount(sel["labels"], minlength=records[0].centroids.shape[0])]
    for rec in records[1:]:
        after.append(torch.zeros(rec.centroids.shape[0], dtype=torch.int64).index_add_(0, rec.assignments, after[-1]))
    summary = write_report(cfg, run, pool, records, sizes, after, sel, out, memory, time.perf_counter() - start)
    return summary


__all__ = ["Pool", "check_inputs", "curate", "embed_pool", "embedding_blocks", "load_pool", "write_embeddings",
           "write_embeddings_local", "write_selection"]

"""Where the embeddings come from, and which rows each Ray worker holds.

A source is one memory-mapped `.npy` (n x d), a folder of `.npy`/`.parquet` shards (sorted by
name), an in-memory array, or a Ray Dataset. `plan_shards` checks the files from their
headers (missing file, empty shard, dimension mismatch) before Ray starts, and cuts the rows
into contiguous parts per worker. A part is a plain description, so a restarted worker loads
it again from the same arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.config import ConfigError, require

SUFFIXES = (".npy", ".parquet")


@dataclass(frozen=True)
class Part:
    """Rows [start, stop) of one file (or of an in-memory array / Ray Dataset split `obj`).

    Their ids are `first_id + row - start`, unless a parquet file carries an `id` column.
    """

    kind: str  # "npy" | "parquet" | "array" | "dataset"
    path: str | None
    start: int
    stop: int
    first_id: int
    column: str = "embedding"
    obj: Any = None

    @property
    def rows(self) -> int:
        return self.stop - self.start


def _npy_shape(path: Path) -> tuple[int, ...]:
    try:
        return np.load(path, mmap_mode="r").shape
    except Exception as err:
        raise ConfigError("source", f"{path} is not a readable .npy file: {err}") from None


def _parquet_shape(path: Path, column: str) -> tuple[int, int]:
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(path)
    except Exception as err:
        raise ConfigError("source", f"{path} is not a readable parquet file: {err}") from None
    names = f.schema_arrow.names
    require(column in names, "column", f"{path} has no column {column!r}; its columns: {', '.join(names)}")
    n = f.metadata.num_rows
    if n == 0:
        return 0, 0
    first = _column_rows(f.read_row_group(0, columns=[column]).column(column).slice(0, 1))
    return n, first.shape[1]


def file_shapes(source: str | Path, column: str = "embedding") -> list[tuple[Path, int, int]]:
    """(file, rows, dim) of every shard of a `.npy` file or folder, in order, checked."""
    p = Path(source).expanduser()
    if not p.exists():
        raise ConfigError("source", f"file not found: {p}")
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in SUFFIXES)
        require(len(files) > 0, "source", f"{p} holds no {' or '.join(SUFFIXES)} shards")
    else:
        require(p.suffix in SUFFIXES, "source", f"{p}: expected a .npy or .parquet file, or a folder of them")
        files = [p]
    out = []
    for f in files:
        if f.suffix == ".npy":
            shape = _npy_shape(f)
            require(len(shape) == 2, "source", f"{f} holds an array of shape {shape}; expected rows x dim")
            n, d = shape
        else:
            n, d = _parquet_shape(f, column)
        require(n > 0, "source", f"empty shard: {f} has no rows")
        out.append((f, n, d))
    dims = {d for _, _, d in out}
    if len(dims) > 1:
        first = out[0]
        odd = next(x for x in out if x[2] != first[2])
        raise ConfigError("source", f"dimension mismatch between shards: {first[0]} has d={first[2]}, "
                                    f"{odd[0]} has d={odd[2]}")
    return out


def split_rows(parts: list[Part], num_workers: int) -> list[list[Part]]:
    """Cut the parts (in order) into `num_workers` contiguous groups of nearly equal rows.

    A `.npy` or in-memory part may be cut between groups; a parquet part stays whole (its row
    groups are the unit a reader can seek to). Fewer groups come back if there are too few rows.
    """
    total = sum(p.rows for p in parts)
    num_workers = max(1, min(num_workers, total))
    bounds = [round(total * (i + 1) / num_workers) for i in range(num_workers)]
    groups: list[list[Part]] = [[] for _ in range(num_workers)]
    g, filled = 0, 0
    for part in parts:
        start = part.start
        while start < part.stop:
            while g < num_workers - 1 and filled >= bounds[g]:
                g += 1
            if part.kind in ("parquet", "dataset"):
                take = part.stop - start
            else:
                take = min(part.stop - start, max(1, bounds[g] - filled))
            groups[g].append(Part(part.kind, part.path, start, start + take,
                                  part.first_id + start - part.start, part.column, part.obj))
            filled += take
            start += take
    return [grp for grp in groups if grp]


def plan_shards(source: Any, num_workers: int, column: str = "embedding") -> tuple[list[list[Part]], int, int]:
    """(parts per worker, n, d) for a path, a numpy/torch array, or a Ray Dataset."""
    require(num_workers >= 1, "num_workers", f"must be >= 1, got {num_workers}")
    if isinstance(source, (np.ndarray, torch.Tensor)):
        arr = source.numpy() if isinstance(source, torch.Tensor) else source
        require(arr.ndim == 2 and arr.shape[0] > 0, "source", f"expected a non-empty rows x dim array, got {arr.shape}")
        import ray

        # One object per worker slice, so a worker fetches its rows only.
        slices = split_rows([Part("array", None, 0, arr.shape[0], 0)], num_workers)
        groups = [[Part("array", None, 0, p.rows, p.first_id, obj=ray.put(np.ascontiguousarray(arr[p.start:p.stop])))
                   for p in grp] for grp in slices]
        return groups, arr.shape[0], arr.shape[1]
    if type(source).__module__.startswith("ray.data"):
        return _plan_dataset(source, num_workers, column)
    shapes = file_shapes(source, column)
    parts, first = [], 0
    for f, n, _ in shapes:
        parts.append(Part(f.suffix[1:], str(f), 0, n, first, column))
        first += n
    return split_rows(parts, num_workers), first, shapes[0][2]


def _plan_dataset(ds: Any, num_workers: int, column: str) -> tuple[list[list[Part]], int, int]:
    require(column in ds.columns(), "column", f"the Ray Dataset has no column {column!r}; its columns: {ds.columns()}")
    splits = ds.materialize().split(num_workers)
    groups, first, d = [], 0, None
    for s in splits:
        n = s.count()
        if n == 0:
            continue
        if d is None:
            d = len(np.asarray(s.take(1)[0][column]))
        groups.append([Part("dataset", None, 0, n, first, column, obj=s)])
        first += n
    require(first > 0, "source", "the Ray Dataset has no rows")
    return groups, first, int(d)


def _column_rows(column: Any) -> np.ndarray:
    """An n x d array from a parquet column of lists, fixed-size lists or Ray tensor extensions."""
    out = []
    for chunk in column.chunks:
        arr = chunk.to_numpy(zero_copy_only=False)
        out.append(np.stack(arr) if arr.dtype == object else arr.reshape(len(chunk), -1))
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def load_part(part: Part) -> tuple[np.ndarray, np.ndarray]:
    """(rows, ids) of one part, rows as float arrays (a memory map for `.npy`)."""
    ids = np.arange(part.first_id, part.first_id + part.rows, dtype=np.int64)
    if part.kind == "npy":
        return np.load(part.path, mmap_mode="r")[part.start : part.stop], ids
    if part.kind == "array":
        import ray

        obj = part.obj if isinstance(part.obj, np.ndarray) else ray.get(part.obj)
        return obj[part.start : part.stop], ids
    if part.kind == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(part.path)
        rows = _column_rows(table.column(part.column))
        if "id" in table.column_names:
            ids = table.column("id").to_numpy().astype(np.int64)
        return rows[part.start : part.stop], ids[part.start : part.stop]
    if part.kind == "dataset":
        rows, given = [], []
        for b in part.obj.iter_batches(batch_format="numpy", batch_size=4096):
            rows.append(np.stack(b[part.column]) if b[part.column].dtype == object else b[part.column])
            if "id" in b:
                given.append(b["id"].astype(np.int64))
        ids = np.concatenate(given) if given else ids
        return np.concatenate(rows)[part.start : part.stop], ids[part.start : part.stop]
    raise ValueError(f"unknown part kind {part.kind!r}")


__all__ = ["Part", "file_shapes", "load_part", "plan_shards", "split_rows"]

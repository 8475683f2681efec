"""Shard planning from files: every bad input is named before Ray starts; rows split contiguously."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.config import ConfigError
from curation.sources import Part, file_shapes, load_part, plan_shards, split_rows


def _npy(path, n, d=4, seed=0):
    np.save(path, np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32))
    return path


def test_missing_file_empty_shard_and_dimension_mismatch_are_named(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        file_shapes(tmp_path / "nope.npy")
    folder = tmp_path / "shards"
    folder.mkdir()
    _npy(folder / "a.npy", 10)
    np.save(folder / "b.npy", np.zeros((0, 4), dtype=np.float32))
    with pytest.raises(ConfigError, match=r"empty shard: .*b\.npy"):
        file_shapes(folder)
    _npy(folder / "b.npy", 5, d=3)
    with pytest.raises(ConfigError, match=r"dimension mismatch.*a\.npy has d=4.*b\.npy has d=3"):
        file_shapes(folder)
    with pytest.raises(ConfigError, match="no .npy or .parquet shards"):
        file_shapes((tmp_path / "empty").mkdir() or tmp_path / "empty")
    (tmp_path / "x.txt").write_text("1 2 3")
    with pytest.raises(ConfigError, match="expected a .npy or .parquet"):
        file_shapes(tmp_path / "x.txt")


def test_parquet_shards_need_the_embedding_column(tmp_path):
    emb = np.arange(12, dtype=np.float32).reshape(3, 4)
    pq.write_table(pa.table({"id": [7, 8, 9], "vec": list(emb)}), tmp_path / "a.parquet")
    with pytest.raises(ConfigError, match="no column 'embedding'.*id, vec"):
        file_shapes(tmp_path / "a.parquet")
    (part,), = plan_shards(tmp_path / "a.parquet", 2, column="vec")[0]
    rows, ids = load_part(part)
    assert np.array_equal(rows, emb) and ids.tolist() == [7, 8, 9]  # ids from the file's id column


def test_rows_are_split_contiguously_and_evenly_across_files(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    for i, n in enumerate((7, 2, 11)):
        _npy(folder / f"{i}.npy", n, seed=i)
    groups, n, d = plan_shards(folder, 3)
    assert (n, d) == (20, 4)
    assert [sum(p.rows for p in g) for g in groups] == [7, 6, 7]
    ids = np.concatenate([load_part(p)[1] for g in groups for p in g])
    assert ids.tolist() == list(range(20))  # every row once, in file order
    full = np.concatenate([np.load(folder / f"{i}.npy") for i in range(3)])
    rows = np.concatenate([load_part(p)[0] for g in groups for p in g])
    assert np.array_equal(rows, full)
    # more workers than rows: one row each, no empty worker
    assert len(split_rows([Part("npy", "x", 0, 3, 0)], 8)) == 3

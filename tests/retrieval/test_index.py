"""The datastore: exact neighbours on a small corpus, IVF-PQ close to them, and the neighbour cache check."""

import numpy as np
import pytest

from core.config import ConfigError
from retrieval.index import (IndexConfig, build_index, fingerprint, load_index, load_neighbours, save_index,
                             save_neighbours, search)


def _unit(n, d, seed):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_flat_index_returns_exact_neighbours_and_round_trips(tmp_path):
    corpus, queries = _unit(500, 16, 0), _unit(20, 16, 1)
    index = build_index(corpus, IndexConfig(kind="flat"))
    scores, ids = search(index, queries, 5)
    want = np.argsort(-(queries @ corpus.T), axis=1)[:, :5]
    assert np.array_equal(ids, want)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ corpus.T, want, axis=1), rtol=1e-5)
    again = load_index(save_index(index, tmp_path / "corpus.faiss"))
    assert np.array_equal(search(again, queries, 5)[1], ids)
    with pytest.raises(ConfigError, match="k=501 is above the corpus size 500"):
        search(index, queries, 501)
    with pytest.raises(ConfigError, match="the corpus has no embeddings"):
        build_index(np.zeros((0, 16), dtype=np.float32), IndexConfig())


def test_ivfpq_finds_most_exact_neighbours():
    corpus = _unit(4000, 32, 2)
    queries = corpus[:50] + 0.05 * _unit(50, 32, 3)
    index = build_index(corpus, IndexConfig(kind="ivfpq", nlist=16, pq_m=8, nprobe=8))
    ids = search(index, queries, 1)[1]
    assert (ids[:, 0] == np.arange(50)).mean() >= 0.8  # each query's own row, up to quantisation


def test_a_stale_neighbour_cache_is_refused(tmp_path):
    fp = fingerprint(["a film", "a book"], encoder="minilm", k=2, corpus="c1")
    path = save_neighbours(tmp_path / "nn.npz", np.array([[0, 1], [1, 0]]), fp)
    assert load_neighbours(path, fp, 2, 2).tolist() == [[0, 1], [1, 0]]
    other = fingerprint(["a film", "a play"], encoder="minilm", k=2, corpus="c1")
    with pytest.raises(ConfigError, match="was computed for other inputs"):
        load_neighbours(path, other, 2, 2)

import numpy as np
import pytest

from core.config import ConfigError
from core.partition import PartitionConfig, dirichlet_partition, iid_partition, make_partitions, summarize


def _labels(n=2000, k=3, seed=0):
    return np.random.default_rng(seed).integers(0, k, n)


def test_dirichlet_covers_every_example_once_and_respects_min_size():
    y = _labels()
    parts = dirichlet_partition(y, 20, 0.5, seed=1, min_size=15)
    allidx = np.concatenate(parts)
    assert len(parts) == 20 and sorted(allidx.tolist()) == list(range(len(y)))
    assert min(len(p) for p in parts) >= 15


def test_dirichlet_is_deterministic_per_seed_and_differs_across_seeds():
    y = _labels()
    a = dirichlet_partition(y, 10, 0.5, seed=3)
    b = dirichlet_partition(y, 10, 0.5, seed=3)
    c = dirichlet_partition(y, 10, 0.5, seed=4)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c))


def test_small_alpha_is_more_skewed_than_large_alpha():
    y = _labels(4000, 2)

    def skew(parts):
        return np.mean([abs(np.mean(y[p]) - np.mean(y)) for p in parts])

    assert skew(dirichlet_partition(y, 20, 0.1, 0, 5)) > 2 * skew(dirichlet_partition(y, 20, 100.0, 0, 5))


def test_impossible_min_size_names_the_field():
    with pytest.raises(ConfigError) as e:
        dirichlet_partition(_labels(50), 10, 0.5, 0, min_size=10)
    assert e.value.key == "partition.min_size"


def test_iid_and_summary():
    y = _labels(103, 2)
    parts = make_partitions(PartitionConfig(num_clients=4, scheme="iid", min_size=5), y)
    assert sorted(len(p) for p in parts) == [25, 26, 26, 26]
    s = summarize(parts, y, ["a", "b"])
    assert s["sizes"] == [len(p) for p in parts]
    assert [sum(h) for h in s["label_histogram"]] == s["sizes"]
    assert np.array_equal(iid_partition(103, 4, 0)[0], iid_partition(103, 4, 0)[0])


def test_tiny_alpha_over_many_clients_tops_up_small_partitions():
    # Dirichlet(0.1) over 100 clients and 2 classes leaves clients empty in almost every draw.
    y = _labels(6000, 2)
    parts = dirichlet_partition(y, 100, 0.1, seed=0, min_size=10, max_tries=50)
    assert min(len(p) for p in parts) >= 10 and sorted(np.concatenate(parts).tolist()) == list(range(6000))
    def one_label_share(ps):
        shares = np.array([np.mean(y[p]) for p in ps])
        return np.mean((shares < 0.1) | (shares > 0.9))

    # The topped-up clients get a random mix; the rest keep (nearly) one label each.
    assert one_label_share(parts) > 0.3 > 0.01 > one_label_share(dirichlet_partition(y, 100, 10.0, 0, 10))

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from core.config import ConfigError
from core.seeding import generator
from curation.kmeans import (
    DEFAULT_BLOCK_BYTES,
    MIN_BLOCK_ROWS,
    assign,
    block_shape_for,
    auto_init,
    cluster_sums,
    kmeans,
    kmeans_parallel,
    kmeans_plusplus,
    lloyd_step,
    row_sqnorms,
    rows_per_block,
    shard_stats,
)


def _numpy_lloyd(x: np.ndarray, c: np.ndarray, iters: int, tol: float, cosine: bool = False):
    """Float64 reference with kmeans()'s contract: update, reassign, stop on relative inertia change."""
    if cosine:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        c = c / np.linalg.norm(c, axis=1, keepdims=True)

    def assign_np(c):
        d = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)  # brute force, no GEMM trick
        lab = d.argmin(1)
        return lab, d[np.arange(len(x)), lab].sum()

    lab, inertia = assign_np(c)
    n_iter = 0
    while n_iter < iters:
        new = c.copy()
        for j in range(len(c)):  # a loop is fine in a reference
            if (lab == j).any():
                new[j] = x[lab == j].mean(0)
                if cosine:
                    new[j] /= np.linalg.norm(new[j])
        c = new
        n_iter += 1
        lab, new_inertia = assign_np(c)
        done = abs(inertia - new_inertia) <= tol * new_inertia
        inertia = new_inertia
        if done:
            break
    return c, lab, inertia, n_iter


def _data(n=300, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) + rng.integers(0, 4, size=(n, 1)) * 3.0


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_kmeans_equals_numpy_reference(metric):
    x = _data()
    init = x[[3, 50, 120, 200, 250, 299]].copy()
    init[-1] = 1e3  # a centroid nobody is nearest to: must stay where it is
    c_ref, lab_ref, inertia_ref, it_ref = _numpy_lloyd(x, init, iters=30, tol=1e-9, cosine=metric == "cosine")
    res = kmeans(torch.tensor(x), 6, init=torch.tensor(init), iters=30, tol=1e-9, metric=metric,
                 dtype="float64", block_rows=37)  # odd block size: exercises the last partial block
    assert torch.equal(res.labels, torch.tensor(lab_ref))
    assert np.allclose(res.centroids.numpy(), c_ref, rtol=1e-10, atol=1e-10)
    assert res.inertia == pytest.approx(inertia_ref, rel=1e-10)
    assert res.n_iter == it_ref
    if metric == "l2":
        assert res.centroids[-1].eq(1e3).all()


def test_assign_blocks_and_dtypes_agree_with_brute_force():
    x = torch.tensor(_data(n=500, d=7, seed=1))
    c = x[torch.arange(0, 500, 50)].clone() + 0.1
    brute = torch.cdist(x, c) ** 2
    # row blocks, and row x centroid tiles (the running min across tiles) for very many centroids
    for block_rows, block_cols in ((1, None), (13, None), (500, None), (None, None), (13, 3), (64, 1), (None, 4)):
        lab, mind = assign(x, c, block_rows=block_rows, block_cols=block_cols)
        assert torch.equal(lab, brute.argmin(1))
        assert torch.allclose(mind, brute.min(1).values, rtol=1e-9, atol=1e-9)
    dup = torch.cat([c, c])  # ties across tiles go to the lower index, as one argmin would
    assert torch.equal(assign(x, dup, block_rows=50, block_cols=3)[0], brute.argmin(1))
    lab32, mind32 = assign(x.float(), c.float())
    assert mind32.dtype == torch.float32
    assert (lab32 == lab).float().mean() > 0.99  # float32 may flip near-ties only


def test_sharded_statistics_give_the_single_process_centroids():
    # What the distributed run relies on: Lloyd steps from per-shard (sums, counts) are the
    # single-process steps whatever the row split, so 1 and 3 shards end at the same centroids.
    x = torch.tensor(_data(n=1000, d=6, seed=2))
    init = x[:16].clone()
    single = kmeans(x, 16, init=init, iters=8, tol=0.0, dtype="float64")

    def run(bounds):
        c = init.clone()
        for _ in range(single.n_iter):
            c = lloyd_step(c, [shard_stats(x[s:e], c)[1] for s, e in bounds])
        labels = torch.cat([assign(x[s:e], c)[0] for s, e in bounds])
        return c, labels

    c1, l1 = run([(0, 1000)])
    c3, l3 = run([(0, 100), (100, 650), (650, 1000)])
    assert torch.allclose(c1, c3, rtol=1e-12, atol=1e-12)
    assert torch.allclose(c1, single.centroids, rtol=1e-12, atol=1e-12)
    assert torch.equal(l1, l3) and torch.equal(l1, single.labels)
    inertia3 = sum(shard_stats(x[s:e], c3)[1].inertia for s, e in [(0, 100), (100, 650), (650, 1000)])
    assert inertia3 == pytest.approx(single.inertia, rel=1e-12)


def test_cluster_sums_match_a_loop_and_accumulate_in_float64():
    x = torch.randn(300, 4, generator=generator("cpu", "sums"))
    labels = torch.randint(0, 5, (300,), generator=generator("cpu", "labels"))
    labels[labels == 3] = 4  # cluster 3 empty
    sums, counts = cluster_sums(x, labels, 6)
    assert sums.dtype == torch.float64 and counts.dtype == torch.int64
    for j in range(6):
        assert counts[j] == (labels == j).sum()
        assert torch.allclose(sums[j], x[labels == j].double().sum(0))
    new = lloyd_step(torch.zeros(6, 4), [(sums, counts)])
    assert new.dtype == torch.float32 and new[3].eq(0).all() and new[5].eq(0).all()


def test_kmeans_parallel_and_plusplus_reach_similar_objectives_on_blobs():
    # Averaged over 4 init seeds: one run of either init can land in a local optimum (two
    # centroids in one blob) and differ by ~15% from another run of the *same* init, which
    # says nothing about the init. Means over seeds on three blob sets differed by <= 7.4%.
    x, _ = make_blobs(n_samples=4000, n_features=16, centers=25, cluster_std=2.0, random_state=0)
    x = torch.tensor(x, dtype=torch.float32)
    pp = np.mean([kmeans(x, 25, init="kmeans++", seed=s, iters=50).inertia for s in range(4)])
    par = np.mean([kmeans(x, 25, init="kmeans||", seed=s, iters=50).inertia for s in range(4)])
    assert abs(par - pp) <= 0.10 * min(pp, par)


def test_initialisations_are_seeded_and_handle_duplicates():
    x = torch.randn(2000, 3, generator=generator("cpu", "init"))
    a = kmeans_plusplus(x, 20, generator("cpu", 1))
    assert torch.equal(a, kmeans_plusplus(x, 20, generator("cpu", 1)))
    b = kmeans_parallel(x, 20, generator("cpu", 1))
    assert torch.equal(b, kmeans_parallel(x, 20, generator("cpu", 1)))
    # 10 distinct points repeated: both inits must find all 10 (D^2 = 0 is never drawn again)
    dup = torch.arange(10.0).repeat(50).unsqueeze(1) * torch.ones(1, 2)
    for c in (kmeans_plusplus(dup, 10, generator("cpu", 2)), kmeans_parallel(dup, 10, generator("cpu", 2))):
        assert torch.unique(c[:, 0]).numel() == 10
    assert kmeans(dup, 10, seed=3).inertia == 0.0


def test_kmeans_parallel_with_fewer_candidates_than_k_never_repeats_a_centre():
    """One round with l = 1 leaves fewer than k candidates; the top-up points carry no weight, so
    the reduction's draws fall back to uniform, which must skip the points already chosen."""
    x = torch.randn(60, 4, generator=torch.Generator().manual_seed(0))
    for s in range(20):
        c = kmeans_parallel(x, 12, generator("cpu", s), rounds=1, oversampling=1)
        assert torch.unique(c, dim=0).shape[0] == 12
        assert all(bool((x == row).all(dim=1).any()) for row in c)  # every centre is a data point
    # the same holds when k is every point: all n are chosen once each
    c = kmeans_parallel(x[:12], 12, generator("cpu", 0), rounds=1, oversampling=1)
    assert torch.unique(c, dim=0).shape[0] == 12


def test_block_shapes_fit_the_budget_and_tile_centroids_when_k_is_huge():
    assert block_shape_for(1024, torch.float32) == (2048, 1024)
    rows, cols = block_shape_for(500_000, torch.float32)  # the paper's second level
    assert rows == MIN_BLOCK_ROWS and rows * cols * 4 <= DEFAULT_BLOCK_BYTES


def test_auto_init_switches_to_kmeans_parallel_for_large_n():
    assert auto_init(2_000, 100) == "kmeans++"  # 1001 candidates: not worth it
    assert auto_init(5_000, 100) == "kmeans||"
    assert auto_init(200_000, 1024) == "kmeans||"


def test_bad_inputs_are_named():
    x = torch.randn(10, 3)
    with pytest.raises(ConfigError, match="k=11.*n=10"):
        kmeans(x, 11)
    bad = x.clone()
    bad[[2, 7], 1] = float("nan")
    bad[4, 0] = float("inf")
    with pytest.raises(ConfigError, match="3 of 10 rows contain NaN or inf"):
        kmeans(bad, 2)
    with pytest.raises(ConfigError, match="no points"):
        kmeans(torch.zeros(0, 3), 1)
    with pytest.raises(ConfigError, match="'metric'"):
        kmeans(x, 2, metric="manhattan")
    with pytest.raises(ConfigError, match="'dtype'"):
        kmeans(x, 2, dtype="float16")
    with pytest.raises(ConfigError, match="expected \\(2, 3\\)"):
        kmeans(x, 2, init=torch.zeros(3, 3))


def test_row_blocks_are_sized_in_bytes_so_a_temporary_costs_the_budget_at_any_d():
    # a fixed 65,536 rows made each elementwise temporary 100 MB at d=384 (a worker's peak 1.8x its shard)
    for d in (64, 384, 4096):
        x = torch.empty(10, d)
        rows = rows_per_block(x)
        assert rows * d * 4 <= DEFAULT_BLOCK_BYTES < (rows + 1) * d * 4
    x = torch.randn(1000, 384, generator=torch.Generator().manual_seed(0))
    blocked = row_sqnorms(x, block_rows=7)  # many ragged blocks, same numbers as one pass
    assert torch.allclose(blocked, (x * x).sum(dim=1)) and torch.equal(row_sqnorms(x), blocked)

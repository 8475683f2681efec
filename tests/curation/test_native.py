import shutil

import numpy as np
import pytest
import torch

from curation import native
from curation.kmeans import assign, cluster_sums, kmeans


def test_kernel_builds_where_a_compiler_exists():
    if shutil.which("g++") or shutil.which("c++") or shutil.which("clang++"):
        assert native.available()
        assert native.library_path().exists()
    else:
        assert not native.available()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("b,k", [(1, 1), (3, 5), (200, 16), (257, 1000), (130, 17), (64, 8)])
def test_row_min_equals_tensor_min_with_ties_and_strides(dtype, b, k):
    g = torch.Generator().manual_seed(b * 1000 + k)
    t = torch.randn(b, k, generator=g, dtype=dtype)
    if k > 1:  # ties: the first index must win, across SIMD lanes and in the tail
        t[::2, k // 2] = -100
        t[::2, -1] = -100
        t[1::3, 0] = t[1::3].min(dim=1).values
    for tile in (t, torch.randn(b, k + 7, generator=g, dtype=dtype)[:, :k]):  # a view with a wider row stride
        v, i = native.row_min(tile)
        rv, ri = tile.min(dim=1)
        assert torch.equal(i, ri)
        assert torch.equal(v, rv)
        for threads in (1, 3):
            assert torch.equal(native.row_min(tile, threads=threads)[1], ri)


def test_row_min_of_all_equal_rows_is_index_zero():
    t = torch.full((40, 37), 2.5)
    assert native.row_min(t)[1].eq(0).all()


def test_cluster_sums_are_bit_equal_to_float64_index_add():
    g = torch.Generator().manual_seed(0)
    for n, d, k in ((1, 1, 1), (1000, 7, 13), (5000, 64, 100)):
        x = torch.randn(n, d + 3, generator=g)[:, :d]  # strided rows too
        lab = torch.randint(k, (n,), generator=g)
        sums, counts = cluster_sums(x, lab, k)
        ref = torch.zeros(k, d, dtype=torch.float64).index_add_(0, lab, x.double())
        assert torch.equal(sums, ref)
        assert torch.equal(counts, torch.bincount(lab, minlength=k))


def test_cluster_sums_still_refuse_a_bad_label():
    with pytest.raises((IndexError, RuntimeError)):
        cluster_sums(torch.ones(3, 2), torch.tensor([0, 1, 5]), 2)


def _brute(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return ((x.double()[:, None, :] - c.double()[None, :, :]) ** 2).sum(-1).argmin(1)


def test_assign_with_kernel_equals_fallback_and_brute_force(monkeypatch):
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(40, 64)) * 6
    x = torch.tensor(centres[rng.integers(0, 40, 3000)] + rng.normal(size=(3000, 64)), dtype=torch.float32)
    c = torch.tensor(centres, dtype=torch.float32)
    c[7] = c[3]  # a duplicated centroid: exact ties, lowest index must win
    lab, mind = assign(x, c)
    assert torch.equal(lab, _brute(x, c))
    assert not (lab == 7).any()
    for rows, cols in ((37, None), (128, 16)):
        assert torch.equal(assign(x, c, block_rows=rows, block_cols=cols)[0], lab)
    monkeypatch.setattr(native, "_tried", True)
    monkeypatch.setattr(native, "_lib", None)
    lab_t, mind_t = assign(x, c)
    assert torch.equal(lab_t, lab)
    assert torch.equal(mind_t, mind)


def test_kmeans_is_the_same_with_and_without_kernel(monkeypatch):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4000, 16, generator=g) + torch.randint(0, 5, (4000, 1), generator=g) * 4.0
    a = kmeans(x, 20, iters=10, seed=2)
    monkeypatch.setattr(native, "_tried", True)
    monkeypatch.setattr(native, "_lib", None)
    b = kmeans(x, 20, iters=10, seed=2)
    assert torch.equal(a.labels, b.labels)
    assert torch.equal(a.centroids, b.centroids)
    assert a.inertia == b.inertia

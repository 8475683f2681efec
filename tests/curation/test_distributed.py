"""Sharded k-means on Ray workers equals the single-process math; workers that die are restarted."""

import numpy as np
import pytest
import torch

from core.config import ConfigError
from core.seeding import generator
from curation.distributed import ShardedPoints, kmeans_sharded
from curation.hierarchical import LevelSpec, hierarchical_kmeans
from curation.kmeans import kmeans, lloyd_step
from curation.levels import KMeansOptions, balanced_sample_sharded, hierarchical_kmeans_sharded
from curation.sampling import balanced_sample
from tests.conftest import RAY

pytestmark = RAY

WORKER = {"num_cpus": 0.25}


def _blobs(n=2400, d=8, centers=12, seed="blobs"):
    g = generator("cpu", seed)
    c = torch.randn(centers, d, generator=g, dtype=torch.float64) * 4
    lab = torch.randint(0, centers, (n,), generator=g)
    return c[lab] + torch.randn(n, d, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("workers", [1, 3])
def test_sharded_lloyd_equals_single_process_for_the_same_init(ray_session, workers):
    x = _blobs()
    init = x[torch.randperm(x.shape[0], generator=generator("cpu", "init"))[:16]].clone()
    ref = kmeans(x, 16, init=init, dtype="float64", iters=30, tol=0.0)
    with ShardedPoints(x.numpy(), workers, dtype="float64", **WORKER) as pts:
        assert len(pts.workers) == workers
        res = kmeans_sharded(pts, 16, init=init, iters=30, tol=0.0)
        labels = pts.labels(res.version, res.centroids)
    assert res.n_iter == ref.n_iter
    torch.testing.assert_close(res.centroids, ref.centroids, rtol=0, atol=1e-10)
    assert res.inertia == pytest.approx(ref.inertia, rel=1e-12)
    assert torch.equal(labels["labels"], ref.labels)
    assert torch.equal(labels["ids"], torch.arange(x.shape[0]))
    assert torch.equal(res.counts, torch.bincount(ref.labels, minlength=16))


def test_kmeans_parallel_is_the_same_for_any_sharding_and_close_to_kmeans_plusplus(ray_session):
    x = _blobs(n=4000, centers=20).float()
    out = {}
    for workers in (1, 3):
        with ShardedPoints(x.numpy(), workers, **WORKER) as pts:
            out[workers] = pts.init_kmeans_parallel(20, seed=5)
            if workers == 3:
                # one seed is a lottery between local optima for either init (measured: 3 or 4 of
                # 6 seeds find the best one); the claim is about the typical objective
                par = [kmeans_sharded(pts, 20, init="kmeans||", seed=s, iters=30).inertia for s in range(6)]
                pp = [kmeans_sharded(pts, 20, init="kmeans++", seed=s, iters=30).inertia for s in range(6)]
    assert torch.equal(out[1], out[3])  # draws hashed from row ids, not from a shard's stream
    mean_par, mean_pp = sum(par) / 6, sum(pp) / 6
    assert abs(mean_par - mean_pp) <= 0.1 * min(mean_par, mean_pp)


@pytest.mark.parametrize("workers", [1, 3])
def test_sharded_tree_and_balanced_sample_equal_the_single_process_ones(ray_session, workers, tmp_path):
    x = _blobs(n=1500, d=6, centers=9, seed="tree")
    levels = [LevelSpec(40, 3), LevelSpec(8, 4, sample_size=2, sample_strategy="random")]
    single = hierarchical_kmeans(x, levels, seed=3, init="kmeans++", dtype="float64", iters=25)
    want = balanced_sample(single, 300, seed=4)
    opts = KMeansOptions(iters=25, init="kmeans++", dtype="float64")
    with ShardedPoints(x.numpy(), workers, dtype="float64", **WORKER) as pts:
        recs = hierarchical_kmeans_sharded(pts, levels, 3, opts, tmp_path / "levels", WORKER)
        for rec, lv in zip(recs, single):
            torch.testing.assert_close(rec.centroids, lv.centroids, rtol=0, atol=1e-9)
        assert torch.equal(recs[1].assignments, single[1].assignments)
        sel = balanced_sample_sharded(pts, recs, 300, seed=4)
    assert torch.equal(sel["ids"], want)
    assert torch.equal(sel["labels"], single[0].assignments[want])


def test_upper_levels_in_the_driver_equal_the_single_process_tree_and_keep_the_workers(ray_session, tmp_path):
    # the workers' path equals the single-process tree (the test above), so the driver's path is
    # checked against that tree directly, on cosine (the config default) and three levels
    x = _blobs(n=1500, d=6, centers=9, seed="driver")
    levels = [LevelSpec(40, 3), LevelSpec(8, 4, sample_size=2, sample_strategy="random"), LevelSpec(3, 2)]
    common = dict(iters=25, init="kmeans++", dtype="float64", metric="cosine")
    single = hierarchical_kmeans(x, levels, seed=3, **common)
    want = balanced_sample(single, 300, seed=4)
    with ShardedPoints(x.numpy(), 2, dtype="float64", metric="cosine", **WORKER) as pts:
        pids = [i["pid"] for i in pts.call("info")]
        opts = KMeansOptions(**common)
        recs = hierarchical_kmeans_sharded(pts, levels, 3, opts, tmp_path, WORKER, driver_level_mb=1.0)
        assert [i["pid"] for i in pts.call("info")] == pids  # the points' workers were never stopped
        sel = balanced_sample_sharded(pts, recs, 300, seed=4)
        again = hierarchical_kmeans_sharded(pts, levels, 3, opts, tmp_path, WORKER, driver_level_mb=1.0)
    for rec, lv in zip(recs, single):
        torch.testing.assert_close(rec.centroids, lv.centroids, rtol=0, atol=1e-9)
    for t in (1, 2):
        assert torch.equal(recs[t].assignments, single[t].assignments)
        assert torch.equal(recs[t].counts, torch.bincount(single[t].assignments, minlength=levels[t].k))
        assert recs[t].inertia == pytest.approx(float(single[t].sqdist.sum()), rel=1e-9)
        assert torch.equal(again[t].assignments, recs[t].assignments)  # loaded back like any level
    assert [r.resumed for r in again] == [True, True, True]
    assert torch.equal(sel["ids"], want)


def test_finished_levels_are_loaded_not_recomputed(ray_session, tmp_path):
    x = _blobs(n=900, d=5, seed="resume")
    levels = [LevelSpec(20, 2), LevelSpec(5, 3)]
    out = tmp_path / "levels"
    with ShardedPoints(x.numpy(), 2, dtype="float64", **WORKER) as pts:
        first = hierarchical_kmeans_sharded(pts, levels, 0, KMeansOptions(dtype="float64"), out, WORKER)
        (out / "level1" / "level.json").unlink()  # as if the run died during level 2
        second = hierarchical_kmeans_sharded(pts, levels, 0, KMeansOptions(dtype="float64"), out, WORKER)
        with pytest.raises(ConfigError, match=r"levels\[0\].*different config"):
            hierarchical_kmeans_sharded(pts, levels, 1, KMeansOptions(dtype="float64"), out, WORKER)
    assert [r.resumed for r in second] == [True, False]
    for a, b in zip(first, second):
        assert torch.equal(a.centroids, b.centroids) and torch.equal(a.counts, b.counts)
    assert torch.equal(first[1].assignments, second[1].assignments)


def test_a_killed_worker_is_restarted_and_the_result_is_unchanged(ray_session):
    import ray

    x = _blobs(n=2000, seed="kill")
    init = x[:10].clone()
    with ShardedPoints(x.numpy(), 3, dtype="float64", **WORKER) as pts:
        ref = kmeans_sharded(pts, 10, init=init, iters=20, tol=0.0)
        pids = [i["pid"] for i in pts.call("info")]
        version, stats = pts.stats(init)
        c = init
        for it in range(20):
            if it in (3, 11):
                ray.kill(pts.workers[it % 3], no_restart=False)  # dies, loses its shard and labels
            c = lloyd_step(c, [stats])
            version, stats = pts.stats(c)
        new_pids = [i["pid"] for i in pts.call("info")]
    assert new_pids[0] != pids[0] and new_pids[2] != pids[2]  # restarted processes
    torch.testing.assert_close(c, ref.centroids, rtol=0, atol=1e-10)
    assert stats.inertia == pytest.approx(ref.inertia, rel=1e-12)


def test_nan_rows_are_counted_and_named(ray_session):
    x = np.random.default_rng(0).standard_normal((100, 4)).astype(np.float32)
    x[[5, 17, 60]] = np.nan
    with pytest.raises(ConfigError, match=r"3 of 100 rows contain NaN or inf \(first at id 5\)"):
        ShardedPoints(x, 2, **WORKER)


def test_k_above_the_inputs_and_target_above_the_pool_are_named(ray_session):
    x = _blobs(n=50, d=3, centers=3)
    with ShardedPoints(x.numpy(), 2, dtype="float64", **WORKER) as pts:
        with pytest.raises(ConfigError, match=r"levels\[1\]\.k.*k=60 .*larger than its 10 inputs"):
            hierarchical_kmeans_sharded(pts, [LevelSpec(10), LevelSpec(60)], 0)
        recs = hierarchical_kmeans_sharded(pts, [LevelSpec(5)], 0, KMeansOptions(dtype="float64"))
        with pytest.raises(ConfigError, match="target=51 is larger than the pool of 50"):
            balanced_sample_sharded(pts, recs, 51, seed=0)


def test_a_removed_node_does_not_end_the_run(tmp_path):
    """In its own process: a Cluster of two nodes is its own Ray, apart from the session's."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo), "RAY_ADDRESS": ""}
    proc = subprocess.run([sys.executable, "-m", "tests.curation.node_loss_script"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK: workers" in proc.stdout


def test_levels_run_when_the_point_workers_hold_every_cpu(ray_session):
    """The upper levels' workers need the CPUs the level-1 workers hold: those are suspended
    meanwhile and resumed for sampling (this deadlocked on the laptop config before)."""
    x = _blobs(n=600, d=4, seed="all-cpus")
    full = {"num_cpus": 1}  # two workers take the session's two CPUs
    with ShardedPoints(x.numpy(), 2, dtype="float64", **full) as pts:
        recs = hierarchical_kmeans_sharded(pts, [LevelSpec(12, 2), LevelSpec(4, 2)], 0,
                                           KMeansOptions(dtype="float64", iters=10), worker_options=full)
        assert len(pts.workers) == 2
        sel = balanced_sample_sharded(pts, recs, 100, seed=0)
    assert sel["ids"].numel() == 100


def test_a_ray_dataset_source_gives_the_array_result(ray_session):
    import ray

    x = _blobs(n=900, d=5, seed="dataset")
    ds = ray.data.from_items([{"embedding": row} for row in x.numpy()], override_num_blocks=3)
    init = x[:6].clone()
    with ShardedPoints(ds, 2, dtype="float64", **WORKER) as pts:
        got = kmeans_sharded(pts, 6, init=init, iters=10, tol=0.0)
        ids = pts.labels(got.version, got.centroids)["ids"]
    ref = kmeans(x, 6, init=init, dtype="float64", iters=10, tol=0.0)
    assert torch.equal(torch.sort(ids).values, torch.arange(900))  # every row once
    torch.testing.assert_close(got.centroids, ref.centroids, rtol=0, atol=1e-10)


def test_npy_shards_stay_memory_mapped_and_threads_follow_the_reservation(ray_session, tmp_path):
    """A float32 .npy source is used in place from the file's map (no copy in the worker), and each
    worker runs as many torch threads as CPUs it reserved, whatever OMP_NUM_THREADS says."""
    x = _blobs(n=1000, d=6, seed="memmap").to(torch.float32)
    np.save(tmp_path / "x.npy", x.numpy())
    init = x[:5].clone()
    with ShardedPoints(tmp_path / "x.npy", 2, num_cpus=1) as pts:
        infos = pts.call("info")
        got = kmeans_sharded(pts, 5, init=init, iters=5, tol=0.0)
        memory = pts.memory()
    assert [i["memory_mapped"] for i in infos] == [True, True]
    assert [i["threads"] for i in infos] == [1, 1]
    assert [i["n"] for i in infos] == [500, 500]
    assert all(m["baseline_rss_mb"] > 0 and m["peak_rss_mb"] >= m["baseline_rss_mb"] for m in memory)
    ref = kmeans(x, 5, init=init, iters=5, tol=0.0)
    torch.testing.assert_close(got.centroids, ref.centroids, rtol=0, atol=1e-6)
    with ShardedPoints(tmp_path / "x.npy", 1, dtype="float64", num_cpus=2) as pts:
        info = pts.call("info")[0]
    assert info["threads"] == 2
    assert not info["memory_mapped"]  # float64 from float32 rows is a converted copy


def test_what_a_worker_returns_does_not_carry_its_shard():
    """A tensor view pickles its whole storage: every small result must own its memory, or the
    driver receives the shard (kpar_first once sent every shard's rows to the driver)."""
    import pickle

    from curation.distributed import ShardWorker
    from curation.sources import Part

    x = _blobs(n=5000, d=8, seed="views").to(torch.float32).numpy()
    w = ShardWorker([Part("array", None, 0, 5000, 0, obj=x)], 0, "float32", "l2", "cpu")
    shard_bytes = x.nbytes
    c = torch.from_numpy(x[:4].copy())
    phi = w.kpar_fold(c)
    results = {"kpar_first": w.kpar_first(0), "stats": w.stats(1, c), "select": w.select(1, c, 3, _id_keys_for_test),
               "smallest": w.smallest(5, _id_keys_for_test), "rows": w.rows(torch.tensor([1, 7])),
               "kpar_sample": w.kpar_sample(c, 8.0 / phi, 0, 0), "kpar_weights": w.kpar_weights(c)}
    assert results["kpar_first"]["row"].shape == (8,)
    for name, r in results.items():
        assert len(pickle.dumps(r)) < shard_bytes / 20, name


def _id_keys_for_test(ids, _sqdist):
    return ids.to(torch.float64)

"""Seconds per Lloyd iteration: curation.kmeans (assign + cluster_sums + lloyd_step) vs faiss.Kmeans.

A sanity check, not the issue-4 benchmark: one process, no Ray. Also prints the GEMM floor
(the n x d by d x k product alone at the rate torch reaches here) and, with --blocks, the
iteration time for several row-block sizes of `assign`.

    OMP_NUM_THREADS=2 python -m bench.kmeans_iteration --no-faiss
    OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=2 python -m bench.kmeans_iteration --faiss-only

faiss-cpu's bundled OpenBLAS does not recognise this VM's CPU (reported as a generic "Intel
Xeon Processor" with AVX-512) and picks a slow kernel: faiss.Kmeans took 3.4-7.7 s per
iteration here without OPENBLAS_CORETYPE=SkylakeX and 0.67-0.82 s with it.
"""

from __future__ import annotations

import argparse
import time

import torch

from core.seeding import generator
from curation.kmeans import assign, block_rows_for, cluster_sums, lloyd_step


def _best(fn, repeats: int) -> float:
    fn()  # warm-up: first-touch of buffers, thread pool start
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--k", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--faiss-iters", type=int, default=10)
    ap.add_argument("--blocks", type=int, nargs="*", default=[])
    # `--faiss-only` times faiss in a process of its own, away from torch's thread pool.
    ap.add_argument("--no-faiss", action="store_true")
    ap.add_argument("--faiss-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    x = torch.randn(args.n, args.d, generator=generator("cpu", "bench", "x"))
    c = x[torch.randperm(args.n, generator=generator("cpu", "bench", "c"))[: args.k]].clone()
    print(f"n={args.n} d={args.d} k={args.k} float32 threads={args.threads}")
    if args.faiss_only:
        return _faiss(x, c, args)

    # The floor is the product alone at the rate torch's GEMM reaches on cache-sized blocks
    # into a reused buffer; timing one n x k product would mostly time page faults on its
    # 800 MB output.
    rows = min(4096, args.n)
    buf = torch.empty(rows, args.k)
    ct = c.t()

    def gemm_blocks() -> None:
        for s in range(0, args.n - rows + 1, rows):
            torch.mm(x[s : s + rows], ct, out=buf)

    gemm = _best(gemm_blocks, args.repeats) * args.n / (args.n // rows * rows)
    rate = 2 * args.n * args.k * args.d / gemm / 1e9
    print(f"GEMM floor (x @ c^T in {rows}-row blocks, no min): {gemm:.3f} s  ({rate:.0f} GFLOP/s)")

    def iteration(block_rows: int | None) -> None:
        labels, _ = assign(x, c, block_rows=block_rows)
        lloyd_step(c, [cluster_sums(x, labels, args.k)])

    default = block_rows_for(args.k, x.dtype)
    for b in [None, *args.blocks]:
        t = _best(lambda: iteration(b), args.repeats)
        print(f"curation assign+sums+step, block_rows={b or default}: {t:.3f} s/iter")
    labels, _ = assign(x, c)
    t = _best(lambda: assign(x, c), args.repeats)
    s = _best(lambda: cluster_sums(x, labels, args.k), args.repeats)
    print(f"  of which assign {t:.3f} s, cluster_sums {s:.3f} s")

    if not args.no_faiss:
        _faiss(x, c, args)


def _faiss(x: torch.Tensor, c: torch.Tensor, args: argparse.Namespace) -> None:
    try:
        import faiss
    except ImportError:
        print("faiss not installed")
        return
    faiss.omp_set_num_threads(args.threads)
    xn = x.numpy()
    km = faiss.Kmeans(args.d, args.k, niter=args.faiss_iters, seed=1, max_points_per_centroid=1 << 30)
    t0 = time.perf_counter()
    km.train(xn, init_centroids=c.numpy())
    total = time.perf_counter() - t0
    print(f"faiss.Kmeans: {total / args.faiss_iters:.3f} s/iter ({args.faiss_iters} iterations, {total:.2f} s)")


if __name__ == "__main__":
    main()

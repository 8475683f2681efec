"""Curation at 1M, 3M and 10M points: wall time, driver and worker peak memory, rare modes kept.

The points are a seeded 64-d Gaussian mixture whose 300 modes follow a Zipf law (the rarer half
of the modes holds about 2% of the points; `curation.synthetic`), written to disk in blocks and
read memory-mapped by the shard workers. Each size is curated end to end by `curation.curate`
(the job's entry function: 3 levels of k-means with resampling above the first, then a
balanced sample) in a fresh process, so its peak memory is its own. Writes the
`curation-scale` section of BENCHMARKS.md and bench_curation_scale.png.

    python -m bench.curation_scale                       # 1M, 3M, 10M
    python -m bench.curation_scale --sizes 200000 600000 --print   # a quick look

Resumes: the data files are reused once complete (their final name is the marker) and each
finished (size, round) keeps its result in <workdir>/results/, so a rerun only measures
what is missing; `--rounds 2` adds a second pass over the sizes (timings: the fastest round).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SIZES = [1_000_000, 3_000_000, 10_000_000]
LEVELS = [(500, 1), (100, 3), (20, 3)]  # (k, resampling steps), bottom up
ITERS = 5  # Lloyd iterations per k-means, every one run (tol = 0): the work is the same at every size
TARGET = 20_000
WORKERS = 2
PNG = "bench_curation_scale.png"


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) / 1024 for x in f if x.startswith(field + ":"))


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except OSError:
        return "?"


def workdir_default() -> Path:
    from core.models import cache_dir

    return cache_dir() / "bench-curation-scale"


def child(n: int, workdir: Path, workers: int) -> dict:
    """Curate the n-point mixture in this process; return its numbers."""
    import numpy as np

    from core.ray import init_ray
    from core.runs import RunConfig, RunDir
    from core.seeding import hash_uniform
    from curation.config import CurationConfig, KMeansConfig, SampleConfig, WorkersConfig
    from curation.curate import curate, load_pool
    from curation.hierarchical import LevelSpec
    from curation.synthetic import Mixture

    mix = Mixture()
    points = workdir / "data" / f"{mix.name(n)}.npy"
    modes_path = workdir / "data" / f"{mix.name(n)}.modes.npy"
    cfg = CurationConfig(
        seed=0, data=[], embeddings=str(points),
        # l2 and float32 keep the rows as they are on disk, so workers use the file's map in place
        kmeans=KMeansConfig(levels=[LevelSpec(k, s) for k, s in LEVELS], iters=ITERS, tol=0.0, metric="l2",
                            dtype="float32"),
        workers=WorkersConfig(num_workers=workers, num_cpus=1),
        sample=SampleConfig(target=TARGET, strategy="random", output="parquet"),
        run=RunConfig(root=str(workdir / "runs" / str(n))),
    )
    baseline = _status_mb("VmRSS")
    load_start = os.getloadavg()[0]
    pool = load_pool(cfg)
    init_ray(num_cpus=workers)
    run = RunDir.create("curate", cfg.run.root)
    start = time.perf_counter()
    numbers = curate(cfg, pool, run)
    wall = time.perf_counter() - start
    driver_peak = _status_mb("VmHWM")
    # what the resident set is made of at the end: the process's own heap, or pages of files and
    # of Ray's shared-memory object store that it has mapped
    driver_parts = {f: _status_mb(f) for f in ("RssAnon", "RssFile", "RssShmem")}

    import pyarrow.parquet as pq

    ids = pq.read_table(run.file("selected.parquet"), columns=["id"]).column("id").to_numpy()
    modes = np.load(modes_path, mmap_mode="r")
    rare = mix.rare(0.5)
    # a uniform random sample of the same size: the TARGET smallest hashed keys, a block at a time
    best = np.empty(0, dtype=np.int64)
    best_keys = np.empty(0)
    for s in range(0, n, 1 << 20):
        block = np.arange(s, min(n, s + (1 << 20)), dtype=np.int64)
        keys = hash_uniform(block, 0, "random-sample").numpy()
        cand_ids, cand_keys = np.concatenate([best, block]), np.concatenate([best_keys, keys])
        keep = np.argsort(cand_keys, kind="stable")[:TARGET]
        best, best_keys = cand_ids[keep], cand_keys[keep]
    random_ids = np.sort(best)
    return {
        "n": n, "commit": _commit(), "wall_s": wall, "driver_peak_mb": driver_peak, "driver_baseline_mb": baseline,
        "driver_rss_parts_mb": driver_parts,
        "workers": numbers["worker_memory"], "levels_s": [lv.get("seconds") for lv in numbers["levels"]],
        "selected": int(len(ids)), "rare_share_balanced": float(rare[modes[np.sort(ids)]].mean()),
        "rare_share_random": float(rare[modes[random_ids]].mean()),
        "rare_share_data": float(mix.probabilities()[rare].sum()),
        "rare_modes_hit_balanced": int(len(set(modes[np.sort(ids)].tolist()) & set(np.flatnonzero(rare).tolist()))),
        "rare_modes_hit_random": int(len(set(modes[random_ids].tolist()) & set(np.flatnonzero(rare).tolist()))),
        "rare_modes": int(rare.sum()),
        "load": [load_start, os.getloadavg()[0]],
    }


def run_size(n: int, rnd: int, workdir: Path, workers: int) -> dict:
    out = workdir / "results" / f"n{n}-w{workers}-round{rnd}.json"
    if out.is_file():
        print(f"{n:,} round {rnd}: cached in {out}", flush=True)
        return json.loads(out.read_text())
    from curation.synthetic import Mixture, write_mixture

    write_mixture(workdir / "data", n, Mixture())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "bench.curation_scale", "--child", str(n), "--workdir", str(workdir),
           "--workers", str(workers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"size {n} failed:\n{proc.stderr[-3000:]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    from core.runs import atomic_write

    atomic_write(out, json.dumps(got, indent=1))
    print(f"{n:,} round {rnd}: {got['wall_s']:.1f} s, driver peak {got['driver_peak_mb']:.0f} MB", flush=True)
    return got


def plot(path: Path, rows: list[dict]) -> None:
    from core.plots import plot_curves  # noqa: F401  (sets the Agg backend)
    import matplotlib.pyplot as plt

    ns = [r["n"] / 1e6 for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    a.plot(ns, [r["wall_s"] for r in rows], "o-", label="measured")
    a.plot(ns, [rows[0]["wall_s"] * r["n"] / rows[0]["n"] for r in rows], "k--", lw=1, label="linear from the smallest")
    a.set_xlabel("points (millions)")
    a.set_ylabel("wall seconds, end to end")
    a.legend()
    a.set_title("time")
    b.plot(ns, [r["driver_peak_mb"] for r in rows], "o-", label="driver peak RSS")
    b.plot(ns, [max(w["peak_rss_mb"] for w in r["workers"]) for r in rows], "s-", label="largest worker peak RSS")
    b.plot(ns, [max(w["shard_mb"] for w in r["workers"]) for r in rows], "k:", label="largest shard")
    b.set_xlabel("points (millions)")
    b.set_ylabel("MB")
    b.legend()
    b.set_title("memory")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", type=int, default=SIZES)
    ap.add_argument("--workers", type=int, default=WORKERS)
    ap.add_argument("--rounds", type=int, default=1, help="passes over the sizes (timings: the fastest)")
    ap.add_argument("--workdir", type=Path, default=None, help="data, runs and per-size results (reused)")
    ap.add_argument("--note", default="", help="a paragraph added to the section (what was not run, and why)")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--print", action="store_true", help="print the section instead of writing BENCHMARKS.md")
    args = ap.parse_args()
    workdir = args.workdir or workdir_default()
    if args.child:
        print(json.dumps(child(args.child, workdir, args.workers)))
        return

    from bench.report import BENCHMARKS, linear_fit, load_range_sentence, write_section
    from core.runs import markdown_table

    sizes = sorted(args.sizes)
    got: dict[int, list[dict]] = {n: [] for n in sizes}
    for rnd in range(args.rounds):  # sizes interleaved round by round, so load drift hits all of them
        for n in sizes:
            got[n].append(run_size(n, rnd, workdir, args.workers))
    rows = []
    for n in sizes:
        best = min(got[n], key=lambda r: r["wall_s"])
        rows.append({**best, "walls": [r["wall_s"] for r in got[n]]})
    base = rows[0]
    table, mem_rows = [], []
    for r in rows:
        scale = r["n"] / base["n"]
        w_over = [(w["peak_rss_mb"] - w["baseline_rss_mb"]) / w["shard_mb"] for w in r["workers"]]
        table.append([f"{r['n']:,}", r.get("commit", "cf590bf"), f"{r['wall_s']:.1f}", ", ".join(f"{x:.1f}" for x in r["walls"]),
                      f"{r['wall_s'] / base['wall_s']:.2f} (linear: {scale:.1f})",
                      f"{r['wall_s'] / base['wall_s'] / scale:.2f}",
                      " / ".join(f"{s:.1f}" for s in r["levels_s"]),
                      f"{r['driver_peak_mb']:.0f}"])
        for i, w in enumerate(r["workers"]):
            mem_rows.append([f"{r['n']:,}", i, f"{w['shard_mb']:.0f}", f"{w['baseline_rss_mb']:.0f}",
                             f"{w['peak_rss_mb']:.0f}", f"{w_over[i]:.2f}"])
    growth = [r["wall_s"] / base["wall_s"] / (r["n"] / base["n"]) for r in rows]
    # the fixed part (Ray start, worker start-ups, the sample) is paid once; linear growth is a
    # constant cost per point on top of it
    fit = linear_fit([r["n"] for r in rows], [r["wall_s"] for r in rows])
    drivers = [r["driver_peak_mb"] for r in rows]
    ws = [w for r in rows for w in r["workers"]]
    wfit = linear_fit([w["shard_mb"] for w in ws], [w["peak_rss_mb"] - w["baseline_rss_mb"] for w in ws])
    worst_worker = max((w["peak_rss_mb"] - w["baseline_rss_mb"]) / w["shard_mb"] for r in rows for w in r["workers"])
    checks = [
        "time linear in n within 20%: time per point relative to the smallest size "
        + ", ".join(f"{r['n'] / 1e6:g}M {g:.2f}" for r, g in zip(rows, growth))
        + f" -> {'met' if all(0.8 <= g <= 1.2 for g in growth) else 'MISSED'} (proportional: no fixed cost allowed)",
        f"time linear in n within 20%, least-squares line: {fit[0]:.1f} s + {fit[1] * 1e6:.1f} s per million points, "
        f"largest deviation {fit[2]:.0%} of a point -> {'met' if fit[2] <= 0.2 else 'MISSED'}"
        + ("" if len(rows) > 2 else " (two sizes fit any line: not judged)"),
        f"driver memory flat: peak {min(drivers):.0f} to {max(drivers):.0f} MB across a {rows[-1]['n'] / base['n']:.0f}x "
        f"range of n -> {'met' if max(drivers) <= 1.2 * min(drivers) else 'MISSED'} (target: within 20%)",
        f"worker peak above its baseline: at most {worst_worker:.2f}x its shard -> "
        f"{'met' if worst_worker <= 1.5 else 'MISSED'} (target: at most 1.5x)",
        f"worker peak above its baseline as a fixed part plus a multiple of the shard (least squares over every "
        f"worker of every size): {wfit[0]:.0f} MB + {wfit[1]:.2f}x the shard -> "
        f"{'met' if wfit[1] <= 1.5 else 'MISSED'} (target: at most 1.5x the shard plus a fixed part; the fixed part "
        f"is the k-means work buffers, sized by k and the tile, not by n)"
        + ("" if len(rows) > 2 else " (two sizes fit any line: not judged)"),
    ]
    rare_rows = [[f"{r['n']:,}", f"{r['rare_share_data']:.1%}", f"{r['rare_share_random']:.1%}",
                  f"{r['rare_share_balanced']:.1%}", f"{r['rare_share_balanced'] / max(r['rare_share_random'], 1e-9):.1f}x",
                  f"{r['rare_modes_hit_random']} / {r['rare_modes']}", f"{r['rare_modes_hit_balanced']} / {r['rare_modes']}"]
                 for r in rows]
    png = (BENCHMARKS.parent if not args.print else Path("runs")) / PNG
    png.parent.mkdir(parents=True, exist_ok=True)
    plot(png, rows)
    levels = ", ".join(f"k={k} ({s} step{'s' if s > 1 else ''})" for k, s in LEVELS)
    body = f"""## curate: scale to 10M points (time, memory, rare modes)

{args.workers} shard workers of 1 CPU each, on this machine's {os.cpu_count()} cores.
{load_range_sentence([r.get("load") for r in rows], "sizes")} The sizes ran {'in ' + str(args.rounds) + ' interleaved rounds (fastest kept)' if args.rounds > 1 else 'once each, smallest first'}.
Data: `curation.synthetic.Mixture()` (64-d float32, 300 Zipf modes with exponent 1.5), one
`.npy` per size written in blocks and read memory-mapped. Curation: the job's `curate` with
levels {levels}, {ITERS} Lloyd iterations per k-means (tol 0, so every size does the same
iterations), k-means|| init, l2, a balanced sample of {TARGET:,} (random within leaves).

| n | code at commit | wall s (best) | every round | time / smallest | per point / smallest | level 1 / 2 / 3 s | driver peak MB |
| --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join('| ' + ' | '.join(map(str, t)) + ' |' for t in table)}

{chr(10).join("- " + c for c in checks)}

Peak memory per worker (RSS includes the shard's memory-mapped file pages; the baseline is the
worker's RSS when it started, before loading its shard: interpreter, torch, Ray):

{markdown_table(["n", "worker", "shard MB", "baseline MB", "peak RSS MB", "(peak - baseline) / shard"], mem_rows)}

Rare modes (the least likely half of the mixture's modes) in the curated sample against a
uniform random sample of the same size:

{markdown_table(["n", "share in the data", "random sample", "balanced sample", "balanced / random",
                 "rare modes hit, random", "rare modes hit, balanced"], rare_rows)}

![time and memory against n]({PNG})
{chr(10) + args.note + chr(10) if args.note else ""}"""
    if args.print:
        print(body)
    else:
        write_section("curation-scale", body)


if __name__ == "__main__":
    main()

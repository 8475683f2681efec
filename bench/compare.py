"""Spry against its baselines at equal rounds and equal wall time (configs/spry/compare.yaml).

Each run is a fresh `python -m ray_jobs.spry` process with the same config but fl.method and
partition.alpha, for the same training-time budget. Writes the `compare` section of
BENCHMARKS.md, with one PNG per alpha (accuracy against round and against wall time).

    .venv/bin/python -m bench.compare                 # the full benchmark (~2 hours)
    .venv/bin/python -m bench.compare --budget-s 60   # a quick look (labelled as such)
    .venv/bin/python -m bench.compare --resume runs/bench-compare/<stamp>   # after an interruption
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.report import BENCHMARKS, load_range_sentence, write_section
from core.config import load
from core.plots import plot_curves
from core.runs import markdown_table, setup_logging
from fl.config import SpryConfig
from fl.evaluation import load_per_example, paired_change, per_example_path
from fl.memory import measure_in_subprocess
from fl.methods import METHODS

CONFIG = Path("configs/spry/compare.yaml")
ALL = ["spry", "spry_paper", "fedavg", "fedyogi", "fedsgd", "fedavg_split", "fedfgd", "fedmezo", "central_diff"]
RUNS = [(1.0, m) for m in ALL] + [(0.1, m) for m in ("spry", "spry_paper", "fedavg", "fedmezo")]
MEMORY_MODE = {"forward": "jvp", "backprop": "backprop", "spsa": "forward", "central": "forward"}
# Each arm: its fl.method and overrides of configs/spry/compare.yaml. fedyogi takes the server
# step of Reddi et al. / Spry's scripts (eta = 1e-2): at 1.0 it diverges. spry_paper is Spry
# with the paper's settings: FedYogi on the server (eta = 1e-2), AdamW clients at lr 1e-4, the
# head at the same rate.
ARMS: dict[str, tuple[str, list[str]]] = {m: (m, []) for m in ALL}
ARMS["fedyogi"] = ("fedyogi", ["fl.server_lr=0.01"])
ARMS["fedsgd"] = ("fedsgd", ["fl.local_steps=1"])
ARMS["spry_paper"] = ("spry", ["fl.server_optimizer=fedyogi", "fl.server_lr=0.01", "fl.optimizer=adamw",
                               "fl.lr=0.0001", "fl.head_lr=null"])


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def arm_load(out: Path) -> list[float] | None:
    """The 1-minute load average at the start and end of an arm (None: a run from before it was kept)."""
    f = out / "load.json"
    return json.loads(f.read_text()) if f.is_file() else None


def run_one(arm: str, alpha: float, budget: float, root: Path) -> tuple[list[dict], Path]:
    """One arm's run (a fresh process): its metrics rows and run directory."""
    out = root / f"{arm}-alpha{alpha}"
    done = [d for d in (out / "spry").glob("*") if (d / "summary.md").is_file()] if (out / "spry").is_dir() else []
    if done:  # --resume: a run that finished before the benchmark was interrupted
        print(f"{arm} alpha={alpha}: reusing {done[0]}", flush=True)
        return _rows(done[0]), done[0]
    load_before = os.getloadavg()[0]
    shutil.rmtree(out, ignore_errors=True)  # a run cut off mid-way starts again
    method, extra = ARMS[arm]
    cmd = [sys.executable, "-m", "ray_jobs.spry", "--config", str(CONFIG),
           "--set", f"fl.method={method}", "--set", f"partition.alpha={alpha}",
           "--set", f"fl.time_budget_s={budget}", "--set", f"run.root={out}",
           *[x for kv in extra for x in ("--set", kv)]]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    (run_dir,) = list((out / "spry").iterdir())
    (out / "load.json").write_text(json.dumps([load_before, os.getloadavg()[0]]))
    rows = _rows(run_dir)
    print(f"{arm} alpha={alpha}: {len(rows) - 1} rounds in {time.perf_counter() - t:.0f} s "
          f"-> accuracy {rows[-1].get('accuracy')}", flush=True)
    return rows, run_dir


def paired_columns(run_dir: Path, rows: list[dict], spry_dir: Path | None, spry_rows: list[dict] | None) -> list[str]:
    """Paired over the same test examples: test loss and accuracy from round 0 to the run's
    last evaluation, and accuracy against spry's last evaluation (equal wall time)."""
    evals = [r for r in rows if "accuracy" in r]
    first, last = per_example_path(run_dir, evals[0]["round"]), per_example_path(run_dir, evals[-1]["round"])
    if not (first.exists() and last.exists()):
        return ["n/a (no per-example results)"] * 3
    a, b = load_per_example(first), load_per_example(last)
    loss, acc = paired_change(a["loss"], b["loss"]), paired_change(a["correct"], b["correct"])
    cols = [f"{loss['mean']:+.4f} ± {loss['se']:.4f} (p={loss['p']:.2g})",
            f"{100 * acc['mean']:+.2f} ± {100 * acc['se']:.2f} (p={acc['p']:.2g})"]
    if spry_dir is None or spry_dir == run_dir:
        return cols + ["-"]
    s_last = per_example_path(spry_dir, [r for r in spry_rows if "accuracy" in r][-1]["round"])
    if not s_last.exists():
        return cols + ["n/a"]
    vs = paired_change(load_per_example(s_last)["correct"], b["correct"])
    return cols + [f"{100 * vs['mean']:+.2f} ± {100 * vs['se']:.2f} (p={vs['p']:.2g})"]


def time_to(rows: list[dict], accuracy: float) -> float | None:
    for r in rows:
        if r.get("accuracy", -1) >= accuracy and r["round"] > 0:
            return r["train_wall_s"]
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-s", type=float, default=480.0, help="training seconds per method (default 8 min)")
    ap.add_argument("--out", default="runs/bench-compare")
    ap.add_argument("--methods", help="comma-separated subset (a check of the script: prints, writes no BENCHMARKS.md)")
    ap.add_argument("--resume", metavar="DIR", help="continue an interrupted benchmark in DIR "
                    "(runs/bench-compare/<stamp>): finished runs are reused, the others run")
    ap.add_argument("--note", default="", help="a paragraph added to the section (what shared the machine, and when)")
    args = ap.parse_args()
    setup_logging()
    cfg = load(SpryConfig, CONFIG)
    root = Path(args.resume) if args.resume else Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    runs = [(a, m) for a, m in RUNS if not args.methods or m in args.methods.split(",")]
    outcomes = {(a, m): run_one(m, a, args.budget_s, root) for a, m in runs}
    results = {k: rows for k, (rows, _) in outcomes.items()}
    dirs = {k: d for k, (_, d) in outcomes.items()}

    kw = dict(batch=cfg.fl.batch_size, seq=cfg.model.max_length, r=cfg.adapter.r, targets=cfg.adapter.target_modules)
    memory = {mode: measure_in_subprocess(cfg.model.name, mode, **kw) for mode in ("jvp", "backprop", "forward")}

    sections, rows_out, checks = [], [], []
    for alpha in sorted({a for a, _ in runs}, reverse=True):
        methods = [m for a, m in runs if a == alpha]
        evals = {m: [r for r in results[(alpha, m)] if "accuracy" in r] for m in methods}
        png = (BENCHMARKS.parent if not args.methods else root) / f"bench_compare_alpha{alpha}.png"
        plot_curves(png, [
            {"x": {m: [r["round"] for r in evals[m]] for m in methods},
             "series": {m: [r["accuracy"] for r in evals[m]] for m in methods},
             "xlabel": "round", "ylabel": "test accuracy"},
            {"x": {m: [r.get("train_wall_s", 0.0) for r in evals[m]] for m in methods},
             "series": {m: [r["accuracy"] for r in evals[m]] for m in methods},
             "xlabel": "training wall time (s)", "ylabel": "test accuracy"},
        ], title=f"MiniLM-L6 + LoRA, Rotten Tomatoes, 100 clients / 10 per round, Dirichlet alpha={alpha}")
        mezo_final = evals["fedmezo"][-1]["accuracy"] if "fedmezo" in evals else None
        for m in methods:
            rs = results[(alpha, m)][1:]
            mem = memory[MEMORY_MODE[METHODS[ARMS[m][0]].trainer]]
            t_mezo = time_to(results[(alpha, m)], mezo_final) if mezo_final is not None else None
            rows_out.append([
                m, alpha, len(rs), f"{evals[m][0]['accuracy']:.4f}", f"{evals[m][-1]['accuracy']:.4f}",
                f"{evals[m][-1]['generalized_accuracy']:.4f}" if "generalized_accuracy" in evals[m][-1] else "-",
                ("n/a: round 0 is above it" if evals[m][0]["accuracy"] >= mezo_final
                 else f"{t_mezo:.0f}" if t_mezo is not None else "never") if mezo_final is not None else "-",
                f"{mem['peak_rss_mb']:.0f}",
                f"{np.mean([r['bytes_down'] for r in rs]):,.0f}", f"{np.mean([r['bytes_up'] for r in rs]):,.0f}",
                f"{np.mean([r['round_s'] for r in rs]):.1f}",
                f"{np.mean([r['client_compute_s'] / (2 * r['round_s']) for r in rs if 'client_compute_s' in r]):.2f}",
                *paired_columns(dirs[(alpha, m)], results[(alpha, m)], dirs.get((alpha, "spry")),
                                results.get((alpha, "spry"))),
            ])
        sections.append(f"![alpha {alpha}]({png.name})")
        # The paper's claims, checked at this alpha.
        if "spry" in evals and "fedmezo" in evals:
            spry = evals["spry"]
            for other in ("fedmezo", "central_diff", "fedfgd"):
                if other not in evals:
                    continue
                n = min(spry[-1]["round"], evals[other][-1]["round"])
                # accuracy after the last round both runs reached (every round is evaluated)
                at_round = lambda rs: [r["accuracy"] for r in rs if r["round"] <= n][-1]  # noqa: E731
                checks.append(f"alpha {alpha}: spry beats {other} at equal rounds ({n}): "
                              f"{at_round(spry):.4f} vs {at_round(evals[other]):.4f} -> "
                              f"{'met' if at_round(spry) > at_round(evals[other]) else 'MISSED'}")
                checks.append(f"alpha {alpha}: spry beats {other} at equal wall time: {spry[-1]['accuracy']:.4f} vs "
                              f"{evals[other][-1]['accuracy']:.4f} -> "
                              f"{'met' if spry[-1]['accuracy'] > evals[other][-1]['accuracy'] else 'MISSED'}")
            if evals["spry"][0]["accuracy"] >= mezo_final:
                checks.append(f"alpha {alpha}: spry reaches fedmezo's final accuracy ({mezo_final:.4f}) sooner -> "
                              f"NOT MEASURABLE: the shared round-0 model ({evals['spry'][0]['accuracy']:.4f}) "
                              "is already there")
                continue
            t_spry = time_to(results[(alpha, "spry")], mezo_final)
            t_mezo = time_to(results[(alpha, "fedmezo")], mezo_final)
            speedup = (t_mezo / t_spry) if t_spry and t_mezo else None
            checks.append(f"alpha {alpha}: spry reaches fedmezo's final accuracy ({mezo_final:.4f}) "
                          f"{'%.2fx sooner' % speedup if speedup else 'not within the budget'} -> "
                          f"{'met' if speedup and speedup >= 1.2 else 'MISSED'} (target 1.2x)")
    checks.append(f"spry's peak client memory {memory['jvp']['peak_rss_mb']:.0f} MB vs fedavg's "
                  f"{memory['backprop']['peak_rss_mb']:.0f} MB -> "
                  f"{'met' if memory['jvp']['peak_rss_mb'] < memory['backprop']['peak_rss_mb'] else 'MISSED'}")
    # How far any run got from the shared starting point, against the test set's sampling noise.
    n_test = cfg.data.max_test
    start = next(r["accuracy"] for r in next(iter(results.values())) if "accuracy" in r)
    finals = {k: [r["accuracy"] for r in rs if "accuracy" in r][-1] for k, rs in results.items()}
    se = float(np.sqrt(start * (1 - start) / n_test))
    spread = max(abs(f - start) for f in finals.values())
    reading = (f"Reading: every run starts at {start:.4f} (the prototype head) and ends within "
               f"{100 * spread:.1f} points of it; one standard error of an accuracy on {n_test} test examples is "
               f"{100 * se:.1f} points. ")
    if spread < 2 * se:
        reading += ("No method moved accuracy beyond that noise in its budget, so the accuracy targets above "
                    "compare noise and neither confirm nor refute the paper's ordering at this scale; memory, "
                    "bytes and round times are the measured differences.")
    quick = "" if args.budget_s >= 480 else (
        f"\n**A quick run: {args.budget_s:.0f} s of training per method, not the benchmark's 8 minutes.**\n")
    body = f"""## spry, `{CONFIG}`: Spry against its baselines at equal rounds and equal wall time

Command: `.venv/bin/python -m bench.compare --budget-s {args.budget_s:.0f}` (config `{CONFIG}`:
MiniLM-L6 + LoRA r=1 on Rotten Tomatoes, 100 clients, 10 per round, 6 local steps, batch 16,
every method from the same prototype-initialized head and seed; each run a fresh process).
{load_range_sentence([arm_load(d.parent.parent) for d in dirs.values()], "arms")}{" " + args.note if args.note else ""}
{quick}
{markdown_table(["method", "alpha", "rounds", "round-0 acc", "final acc", "final generalized acc",
                 "s to fedmezo's final acc",
                 "peak MB per client step", "bytes down/round", "bytes up/round", "s/round",
                 "client compute / (round time x 2 workers)", "test loss change from round 0 ± se (paired)",
                 "accuracy change from round 0, points ± se (paired)",
                 "accuracy minus spry's at the end, points ± se (paired)"], rows_out)}

Final generalized accuracy is the spec's: the global model on every client's own test share, averaged over
clients. The paired columns compare the same test examples at two points (a paired t test): a change is real when its p is
small, whatever the spread of accuracies between examples.

{chr(10).join("- " + c for c in checks)}

{reading}

Wall time counts training rounds only (evaluation excluded), summed per run.

{chr(10).join(sections)}
"""
    if args.methods:
        print(body)
    else:
        write_section("compare", body)


if __name__ == "__main__":
    main()

"""Basel against SVD, FWSVD and ASVD on SmolLM2-135M for movie-review language modelling.

Runs the compression job (configs/compression/laptop.yaml unless --config) as a fresh process,
then writes its table, the plot and the issue's targets into the `compression` section of
BENCHMARKS.md. `bench.compression_speed` times a finished run's models in more rounds.

    .venv/bin/python -m bench.compression
    .venv/bin/python -m bench.compression --resume runs/bench-compression/<stamp>/compress/<run>   # after an interruption
"""

from __future__ import annotations

import argparse
import json
import shutil

import yaml

from bench.report import BENCHMARKS, run_job, write_section
from compression.report import table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/compression/laptop.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default="runs/bench-compression")
    ap.add_argument("--section", default="compression",
                    help="the BENCHMARKS.md section to write; give another with a partial --set run (fewer methods "
                         "or ratios), so it does not pass for the full table")
    ap.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run (its finished rows are kept)")
    args = ap.parse_args()
    run, minutes = run_job("compress", args.config, args.set, args.out, resume=args.resume)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    png = BENCHMARKS.parent / f"bench_{args.section}.png"
    shutil.copy(run / "perplexity_vs_ratio.png", png)

    dense = next(r for r in rows if r["method"] == "dense")
    checks = []
    at = {r["method"]: r for r in rows if abs(r["ratio"] - 0.5) < 1e-9}
    if "basel" in at:
        others = {m: r for m, r in at.items() if m != "basel"}
        best = min(others.values(), key=lambda r: r["target_ppl"]) if others else None
        if best is not None:
            ok = all(at["basel"]["target_ppl"] < r["target_ppl"] for r in others.values())
            checks.append(f"keep 0.5: Basel's target perplexity {at['basel']['target_ppl']:.2f} vs the best baseline's "
                          f"({best['method']}) {best['target_ppl']:.2f} -> {'met' if ok else 'MISSED'} "
                          "(target: below every baseline)")
        speed = at["basel"].get("speedup", dense["latency_s"] / at["basel"]["latency_s"])
        checks.append(f"keep 0.5: Basel's model runs {speed:.2f}x the dense model's speed on CPU (timed in turns) -> "
                      f"{'met' if speed >= 1.3 else 'MISSED'} (target: at least 1.3x)")
        for m, r in at.items():
            checks.append(f"keep 0.5, {m}: off-target perplexity {r['off_target_ppl']:.1f} "
                          f"({r['off_target_ppl'] / dense['off_target_ppl']:.1f}x dense) against target "
                          f"{r['target_ppl']:.1f} ({r['target_ppl'] / dense['target_ppl']:.1f}x dense)")
    overrides = " ".join(f"--set {kv}" for kv in args.set)
    methods = ", ".join(dict.fromkeys(r["method"] for r in rows if r["method"] != "dense"))
    if args.resume:  # the run's own settings are its config.yaml, not --config
        model = yaml.safe_load((run / "config.yaml").read_text())["model"]["name"]
        what = f"the run `{run}` ({model})"
        command = f".venv/bin/python -m bench.compression --resume {args.resume} --section {args.section}"
    else:
        what, command = f"`{args.config}`", (f".venv/bin/python -m bench.compression --config {args.config}"
                                             f"{' ' + overrides if overrides else ''}")
    resumed = " in the resumed process; the run's settings are in its config.yaml" if args.resume else ""
    body = f"""## compress, {what}{' (' + args.section + ')' if args.section != 'compression' else ''}: {methods} against the dense model

Command: `{command}`
({minutes:.0f} minutes on this machine{resumed}; run directory `{run}`).

{table(rows)}

{chr(10).join("- " + c for c in checks)}

![perplexity against keep ratio]({png.name})
"""
    write_section(args.section, body)
    print(body)


if __name__ == "__main__":
    main()

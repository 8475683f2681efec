"""Inference latency of a finished ReFusion run's arms, timed in turns.

Latency depends on the architecture, not the weights, so this rebuilds every arm of the run
(ReFusion with the per-module choice most seeds made) on the run's cached neighbours and times
them in turns (`retrieval.experiment.arm_costs`, as the job now does), so that the CPU's drift
cancels in the ratios to no retrieval. Runs made before the job timed in turns timed one arm
after another; this gives their latency targets a measurement that drift does not decide.

    .venv/bin/python -m bench.refusion_speed --run runs/bench-refusion/<stamp>/refusion/<run>
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.report import write_section
from core.runs import markdown_table


def main() -> None:
    from core.config import load
    from retrieval.experiment import RefusionConfig, arm_costs, prepare
    from retrieval.report import LABELS, aggregate, latency_targets

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a finished run of `ray_jobs.refusion`")
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    run = Path(args.run)
    if not (run / "metrics.jsonl").is_file():
        raise SystemExit(f"--run: {run} has no metrics.jsonl; pass a finished run directory of `ray_jobs.refusion`")
    cfg = load(RefusionConfig, run / "config.yaml", [f"latency_rounds={args.rounds}"])
    agg = aggregate([json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()])
    cost = arm_costs(cfg, prepare(cfg, run / "cache"), agg)
    if "none" not in cost:
        raise SystemExit(f"--run: {run} has no 'none' arm to time the others against")
    rows = [[LABELS[a], f"{c['latency_s'] * 1e3:.2f}", f"{c['latency_vs_none']:.2f}x", f"{c['flops'] / 1e6:.1f}"]
            for a, c in cost.items()]
    checks = ["- " + t for t in latency_targets(cost)]
    corpus = ", ".join(s.name for s in cfg.corpus.sources)
    body = f"""## refusion, run `{run.name}`: inference latency, timed in turns (corpus {corpus})

Command: `.venv/bin/python -m bench.refusion_speed --run {run} --rounds {args.rounds}`.
Batched CPU inference (32 test examples per pass), every arm timed once per round, in turn, for
{args.rounds} rounds; "vs no retrieval" is the median over rounds of the arm's time over no retrieval's.

{markdown_table(["arm", "latency ms / example (median)", "vs no retrieval", "MFLOPs / example"], rows)}

{chr(10).join(checks)}
"""
    write_section(f"refusion_speed {run.name}", body)
    print(body)


if __name__ == "__main__":
    main()

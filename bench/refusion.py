"""ReFusion against no retrieval, concatenation and single candidates, few-shot Rotten Tomatoes.

Runs the ReFusion job (configs/refusion/laptop.yaml unless --config) as a fresh process and
copies its table and targets into the `refusion` section of BENCHMARKS.md (`refusion_<stem>`
for another config, e.g. configs/refusion/in_domain.yaml).

    .venv/bin/python -m bench.refusion
    .venv/bin/python -m bench.refusion --resume runs/bench-refusion/<stamp>/refusion/<run>   # after an interruption
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.report import run_job, section_for, write_section


def rerender(run: Path) -> None:
    """summary.md again from the run's trials, with the current report (e.g. a line added since)."""
    import json

    from core.config import load
    from core.runs import RunDir
    from retrieval.experiment import RefusionConfig
    from retrieval.report import aggregate, write_report

    cfg = load(RefusionConfig, run / "config.yaml")
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    write_report(cfg, RunDir(run), aggregate(rows), json.loads((run / "results.json").read_text())["cost"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/refusion/laptop.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default="runs/bench-refusion")
    ap.add_argument("--section", help="the BENCHMARKS.md section to write (default: refusion, or refusion_<config stem>); "
                                      "give one with --set, so a partial run does not replace the full table")
    ap.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run (its finished trials are kept)")
    ap.add_argument("--from-run", metavar="RUN_DIR", help="rewrite a finished run's summary.md from its metrics.jsonl "
                                                           "and results.json, and the section from it, without running")
    args = ap.parse_args()
    if args.from_run:
        run, minutes = Path(args.from_run), None
        rerender(run)
    else:
        run, minutes = run_job("refusion", args.config, args.set, args.out, resume=args.resume)
    summary = (run / "summary.md").read_text().split("## Config")[0]
    table = summary.split("\n\n", 2)[-1].strip()  # after the title and the setting paragraph
    overrides = " ".join(f"--set {kv}" for kv in args.set)
    body = f"""## refusion, `{args.config}`{' (' + args.section + ')' if args.section else ''}: retrieval representation fusion, few-shot

Command: `.venv/bin/python -m bench.refusion --config {args.config}{' ' + overrides if overrides else ''}{' --section ' + args.section if args.section else ''}`
({'rewritten from the run directory' if minutes is None else f"{minutes:.0f} minutes on this machine"}{' in the resumed process' if args.resume else ''}; run directory `{run}`).

{table}
"""
    write_section(args.section or section_for("refusion", args.config), body)
    print(body)


if __name__ == "__main__":
    main()

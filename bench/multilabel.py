"""Benchmark of the multilabel job: every method on Reuters-21578 (or FIGER) over 5 seeds; writes
the BENCHMARKS.md section `multilabel` (`multilabel_<config>` for other configs) from the run's
results, with each target marked met or missed.

`python -m bench.multilabel --config configs/multilabel/laptop.yaml` runs the job in a fresh
process; `--run-dir runs/multilabel/<run>` writes the section from a finished run instead.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.report import run_job, run_load_sentence, section_for, write_section


def section_body(run: Path, config: str, minutes: float | None, note: str, plot: str, overrides: list[str]) -> str:
    from multilabel.report import by_method, comparisons, results_table, targets

    res = json.loads((run / "results.json").read_text())
    table = by_method(res["trials"])
    cmp_table, _ = comparisons(table)
    summary = (run / "summary.md").read_text().splitlines()
    setup = [line for line in summary[1:8] if line.strip()]
    took = f" The job took {minutes:.1f} min." if minutes is not None else ""
    extra = f" with {' '.join(overrides)}" if overrides else ""
    paired_part = ["Paired over seeds:", "", cmp_table, "", "Targets:", "", *targets(table), ""] if targets(table) else []
    return "\n".join([
        f"## multilabel job, config {Path(config).stem}{extra}: meta-learned weights and thresholds vs baselines", "",
        *setup, "",
        f"{run_load_sentence([run])}{took} {note}".rstrip(),
        "", results_table(table), "", *paired_part,
        f"![learned thresholds and weights against label frequency]({plot})",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.multilabel", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/multilabel/laptop.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--run-dir", help="a finished run of this config: write its section without rerunning")
    ap.add_argument("--out", default="runs/bench_multilabel")
    ap.add_argument("--note", default="")
    ap.add_argument("--section", help="section name (default: multilabel, or multilabel_<config stem>); "
                                      "give runs with --set overrides their own")
    args = ap.parse_args(argv)
    if args.run_dir:
        run, minutes = Path(args.run_dir), None
    else:
        run, minutes = run_job("multilabel", args.config, args.set, args.out)
    name = args.section or section_for("multilabel", args.config)
    note = args.note
    plot = f"bench_{name}.png"
    import shutil

    shutil.copyfile(run / "policy.png", Path(__file__).resolve().parent.parent / plot)
    write_section(name, section_body(run, args.config, minutes, note, plot, args.set))
    print(f"wrote the BENCHMARKS.md section from {run}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

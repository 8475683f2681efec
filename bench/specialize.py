"""Both specialization recipes at laptop scale: the per-stage table of each into BENCHMARKS.md.

Runs `python -m ray_jobs.specialize` on a recipe (configs/specialize/classifier.yaml and
llm.yaml by default, one after the other) as a fresh process, then writes one section per recipe
with one row per stage (its metric, time and artifact), every other number the stages reported,
and what each stage added or cost against the stage before it, as measured.

    .venv/bin/python -m bench.specialize [--config configs/specialize/classifier.yaml] [--from-run RUN_DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from bench.report import BENCHMARKS, load_sentence, section_for, write_section
from core.runs import markdown_table
from specialize.report import HEADER, detail_rows, plot_metrics, stage_rows
from specialize.runner import StageRecord

CONFIGS = ["configs/specialize/classifier.yaml", "configs/specialize/llm.yaml"]


def records_of(run: Path) -> list[StageRecord]:
    """The last record of each stage in the run's metrics.jsonl (a resumed run logs skips again)."""
    by_stage: dict[str, StageRecord] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        meta = {k: r.pop(k) for k in ("stage", "kind", "key", "status", "seconds")}
        art = next(iter((run / "artifacts").glob(f"{meta['stage']}-{meta['key']}")), None)
        report = art / "report" / "report.json" if art is not None else None
        if report is not None and report.is_file():  # both ways, also for runs from before the keys named them
            for h in json.loads(report.read_text()).get("halueval", []):
                r.pop(f"{h['dataset']}/{h['evaluator']}", None)
                r.setdefault(f"{h['dataset']}/{h['evaluator']}/{h['by']}", h["score"])
                r.setdefault(f"{h['dataset']}/{h['evaluator']}/{h['by']}/invalid_share", h["invalid_share"])
        by_stage[meta["stage"]] = StageRecord(meta["stage"], meta["kind"], meta["key"], meta["status"], meta["seconds"],
                                              r, art)
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    # a stage the run never reached (stopped for time, or after a failure) is listed as not run
    return [by_stage.get(st["name"]) or StageRecord(st["name"], st["kind"], "-", "not run")
            for st in cfg["stages"]]


def findings(records: list[StageRecord]) -> list[str]:
    """What each stage added or cost, against the stage it builds on, as measured."""
    by = {r.stage: r for r in records}
    m = lambda s, k: by[s].metrics.get(k) if s in by else None  # noqa: E731
    out = []
    for a, b, what in (("curate", "gold", "GOLD's student (generated data, seeded with curated examples) vs a probe on the curated labelled examples"),
                       ("gold", "spry", "Spry on the clients' private shards, from GOLD's student"),
                       ("gold", "central", "central backprop on the pooled shards, from GOLD's student")):
        x, y = m(a, "test_accuracy"), m(b, "test_accuracy")
        if x is not None and y is not None:
            out.append(f"{what}: test accuracy {x:.4f} -> {y:.4f} ({y - x:+.4f}).")
    if m("spry", "test_accuracy") is not None and m("central", "test_accuracy") is not None:
        d = m("spry", "test_accuracy") - m("central", "test_accuracy")
        out.append(f"Spry minus central backprop: {d:+.4f} test accuracy.")
    if m("refusion", "refusion_test_accuracy") is not None and m("refusion", "none_test_accuracy") is not None:
        x, y = m("refusion", "none_test_accuracy"), m("refusion", "refusion_test_accuracy")
        out.append(f"ReFusion over the curated pool vs the same few-shot model without retrieval: {x:.4f} -> {y:.4f} "
                   f"({y - x:+.4f}, mean over {m('refusion', 'seeds')} seeds).")
    dense = next((r for r in records if r.kind == "lm_eval" and "dense" in str(r.metrics.get("model"))), None)
    comp = next((r for r in records if r.kind == "lm_eval" and r is not dense and r.metrics), None)
    if comp is None:  # the compress stage scores its model on the same held-out blocks
        comp = next((r for r in records if r.kind == "compress" and r.metrics), None)
    if dense and comp:
        for k in ("domain_ppl", "off_domain_ppl"):
            x, y = dense.metrics[k], comp.metrics[k]
            out.append(f"{k}: dense {x:.2f} -> compressed {y:.2f} ({y / x:.2f}x).")
        for k in sorted(set(dense.metrics) & set(comp.metrics)):
            if "/" in k and not k.endswith("invalid_share"):
                # metrics.jsonl keeps a NaN score (no parseable answer) as the string "nan"
                num = lambda m, key: float(m.get(key, "nan"))  # noqa: E731
                out.append(f"{k} score: dense {num(dense.metrics, k):.3f} (invalid "
                           f"{num(dense.metrics, k + '/invalid_share'):.0%}) -> compressed {num(comp.metrics, k):.3f} "
                           f"(invalid {num(comp.metrics, k + '/invalid_share'):.0%}).")
        if "params" in dense.metrics and "params" in comp.metrics:
            out.append(f"parameters: {dense.metrics['params']:,} -> {comp.metrics['params']:,} "
                       f"({comp.metrics['params'] / dense.metrics['params']:.2f}x).")
    return out


def write(config: str, run: Path, minutes: float | None, load: tuple[float, float] | None, section: str,
          note: str) -> None:
    records = records_of(run)
    png = BENCHMARKS.parent / f"bench_{section}.png"
    plot_metrics(records, png)  # also for a run stopped before its own summary and plot
    ran = [r for r in records if r.status in ("ran", "skipped")]
    reported = [r for r in ran if r.metrics.get("metric")]
    took = ("time: see the stage times" if minutes is None else
            f"{minutes * 60:.0f} s end to end" if minutes < 10 else f"{minutes:.0f} minutes")
    checks = [f"every stage finished: {len(ran)} of {len(records)} -> {'met' if len(ran) == len(records) else 'MISSED'}",
              f"a metric after every stage: {len(reported)} of {len(records)} stages report one -> "
              f"{'met' if len(reported) == len(records) else 'MISSED'}"]
    stage_min = sum(r.seconds for r in records) / 60
    checks.append(f"laptop recipe within 25 minutes: its stages took {stage_min:.1f} minutes added up (each in the run "
                  f"where it ran; stages that ran at once overlapped) -> {'met' if stage_min <= 25 else 'MISSED'}")
    load_text = (load_sentence(*load) if load else
                 "Written from a finished run directory: the machine's load while it ran was not recorded.")
    body = f"""## specialize, `{config}`: one row per stage

Command: `python -m ray_jobs.specialize --config {config}` via `python -m bench.specialize --config {config}` ({took};
run directory `{run}`). {load_text} Stages whose inputs were ready together ran at once where their CPUs
fit.{(' ' + note) if note else ''}

{markdown_table(HEADER, stage_rows(records, run))}

![metric after each stage](bench_{section}.png)

What each stage added or cost, as measured (a stage that adds nothing is a finding, not a failure):

{chr(10).join('- ' + f for f in findings(records)) or '- (no comparable pair of stages)'}

Checks:

{chr(10).join('- ' + c for c in checks)}

<details><summary>Every number the stages reported</summary>

{markdown_table(["stage", "key", "value"], detail_rows(records))}

</details>
"""
    write_section(section, body, command=f"python -m bench.specialize --config {config}")
    print(body)


def run_recipe(config: str, overrides: list[str], out: str) -> tuple[Path, float]:
    """The job in a fresh process with run.root = `out` (the same for every run, so that a rerun
    after a failure reuses the complete artifacts of the earlier runs there); its run directory
    and minutes."""
    import subprocess
    import sys

    base = Path(out) / "specialize"
    before = set(base.iterdir()) if base.is_dir() else set()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ray_jobs.specialize", "--config", config, "--set", f"run.root={out}",
                    *[x for kv in overrides for x in ("--set", kv)]], check=True)
    (run,) = set(base.iterdir()) - before
    return run, (time.perf_counter() - start) / 60


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", action="append", help="a recipe (repeatable); default: classifier.yaml, llm.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default="runs/bench-specialize")
    ap.add_argument("--from-run", help="write the section from this finished run directory instead of running")
    ap.add_argument("--note", default="", help="a sentence appended to the section's provenance paragraph")
    args = ap.parse_args()
    for config in args.config or CONFIGS:
        section = section_for("specialize", config)
        before = os.getloadavg()[0]
        if args.from_run:
            write(config, Path(args.from_run), None, None, section, args.note)
            continue
        run, minutes = run_recipe(config, args.set, args.out)
        write(config, run, minutes, (before, os.getloadavg()[0]), section, args.note)


if __name__ == "__main__":
    main()

"""ReFusion against no retrieval, concatenation and single candidates, few-shot Rotten Tomatoes.

Runs the ReFusion job (configs/refusion/laptop.yaml unless --config) as a fresh process and
copies its table and targets into the `refusion` section of BENCHMARKS.md.

    .venv/bin/python -m bench.refusion
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench.report import write_section


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/refusion/laptop.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default="runs/bench-refusion")
    args = ap.parse_args()
    root = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    cmd = [sys.executable, "-m", "ray_jobs.refusion", "--config", args.config, "--set", f"run.root={root}",
           *[x for kv in args.set for x in ("--set", kv)]]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    minutes = (time.perf_counter() - start) / 60
    (run,) = list((root / "refusion").iterdir())
    summary = (run / "summary.md").read_text().split("## Config")[0]
    table = summary.split("\n\n", 2)[-1].strip()  # after the title and the setting paragraph
    overrides = " ".join(f"--set {kv}" for kv in args.set)
    body = f"""## ReFusion: retrieval representation fusion, few-shot (issue 6)

Command: `.venv/bin/python -m bench.refusion --config {args.config}{' ' + overrides if overrides else ''}`
({minutes:.0f} minutes on this machine; run directory `{run}`).

{table}
"""
    write_section("refusion", body)
    print(body)


if __name__ == "__main__":
    main()

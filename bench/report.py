"""Rewrite one section of BENCHMARKS.md, leaving the others as they are."""

from __future__ import annotations

import re
from pathlib import Path

from core.runs import atomic_write

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nEach section is written by the command shown in it; rerun that command to reproduce it.\n"


def write_section(name: str, body: str, path: Path = BENCHMARKS) -> None:
    text = path.read_text() if path.exists() else HEADER
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    atomic_write(path, text)


def section_for(base: str, config: str) -> str:
    """The BENCHMARKS.md section of a benchmark run: `base` for the laptop config, `base_<stem>` for
    another config, so that runs of two configs keep their own tables."""
    stem = Path(config).stem
    return base if stem == "laptop" else f"{base}_{stem}"


def run_job(job: str, config: str, overrides: list[str], out: str) -> tuple[Path, float]:
    """Run `python -m ray_jobs.<job>` in a fresh process with run.root under `out`; return its
    run directory and the minutes it took."""
    import subprocess
    import sys
    import time

    root = Path(out) / time.strftime("%Y%m%d-%H%M%S")
    cmd = [sys.executable, "-m", f"ray_jobs.{job}", "--config", config, "--set", f"run.root={root}",
           *[x for kv in overrides for x in ("--set", kv)]]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    (run,) = list((root / job).iterdir())
    return run, (time.perf_counter() - start) / 60

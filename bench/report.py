"""Rewrite one section of BENCHMARKS.md, leaving the others as they are."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from core.runs import atomic_write

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nEach section is written by the command shown in it; rerun that command to reproduce it.\n"


def provenance(command: str | None = None) -> str:
    """One line a reader needs to trust a table: when, which commit, on what machine, by which command.
    A commit with uncommitted changes is marked `+dirty`."""
    import datetime
    import os
    import platform
    import subprocess
    import sys

    root = BENCHMARKS.parent

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    # a benchmark's own outputs (this file, its plots) are written before its stamp: they do not make the code dirty
    changed = git("diff", "--name-only", "HEAD").splitlines()
    if any(p != BENCHMARKS.name and not (p.startswith("bench_") and p.endswith(".png")) for p in changed):
        commit += "+dirty"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if command is None:
        module = sys.modules["__main__"].__spec__
        prog = f"python -m {module.name}" if module is not None else f"python {sys.argv[0]}"
        command = " ".join([prog, *sys.argv[1:]])
    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (f"_Measured {date}, commit `{commit}`, {os.cpu_count()} cores ({cpu}); "
            f"command: `{command}`._")


def linear_fit(x: list[float], y: list[float]) -> tuple[float, float, float]:
    """(intercept, slope, largest |residual| / value) of a least-squares line (NaNs under 2 points)."""
    if len(x) < 2:
        return float("nan"), float("nan"), float("nan")
    b, a = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    pred = a + b * np.asarray(x, float)
    return float(a), float(b), float(np.max(np.abs(pred - y) / np.asarray(y, float)))


def load_sentence(before: float, after: float | None = None) -> str:
    """The machine's 1-minute load average when a benchmark started (`before`, from os.getloadavg)
    and when it ended (`after`, default now), as a sentence: whether other work shared the cores
    is read from it, not assumed."""
    after = os.getloadavg()[0] if after is None else after
    return (f"The 1-minute load average was {before:.1f} when it started and {after:.1f} when it ended, on "
            f"{os.cpu_count()} cores (the benchmark's own processes count in it).")


def load_range_sentence(loads: list[list[float] | None], what: str = "points") -> str:
    """The 1-minute load averages recorded at the start and end of each of a benchmark's `what`
    (None: not recorded, for results kept from before the record was added), as a sentence."""
    seen = [x for pair in loads if pair for x in pair]
    if not seen:
        return f"The machine's load was not recorded for these {what}."
    missing = sum(1 for pair in loads if not pair)
    return (f"The 1-minute load average at the start and end of the {what} ranged from {min(seen):.1f} to "
            f"{max(seen):.1f} on {os.cpu_count()} cores (their own processes count in it)"
            + (f"; not recorded for {missing} of them." if missing else "."))


def write_section(name: str, body: str, path: Path = BENCHMARKS, command: str | None = None) -> None:
    """Replace (or append) section `name`; its first line after the title records provenance()."""
    text = path.read_text() if path.exists() else HEADER
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    lines = body.rstrip().splitlines()
    stamp = provenance(command)
    # the stamp goes right under the section's title, when the body starts with one
    if lines and lines[0].startswith("#"):
        lines = [lines[0], "", stamp, *lines[1:]]
    else:
        lines = [stamp, "", *lines]
    block = f"{begin}\n" + "\n".join(lines) + f"\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    atomic_write(path, text)


def section_for(base: str, config: str) -> str:
    """The BENCHMARKS.md section of a benchmark run: `base` for the laptop config, `base_<stem>` for
    another config, so that runs of two configs keep their own tables."""
    stem = Path(config).stem
    return base if stem == "laptop" else f"{base}_{stem}"


def run_job(job: str, config: str, overrides: list[str], out: str, resume: str | None = None) -> tuple[Path, float]:
    """Run `python -m ray_jobs.<job>` in a fresh process with run.root under `out` (or, with
    `resume`, continue that run directory with its saved config); return the run directory and
    the minutes this process took."""
    import subprocess
    import sys
    import time

    extra = [x for kv in overrides for x in ("--set", kv)]
    if resume:
        cmd = [sys.executable, "-m", f"ray_jobs.{job}", "--resume", resume, *extra]
    else:
        root = Path(out) / time.strftime("%Y%m%d-%H%M%S")
        cmd = [sys.executable, "-m", f"ray_jobs.{job}", "--config", config, "--set", f"run.root={root}", *extra]
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    subprocess.run(cmd, check=True)
    minutes = (time.perf_counter() - start) / 60
    run = Path(resume) if resume else next(iter((root / job).iterdir()))
    record_load(run, load_before)
    return run, minutes


def record_load(run: Path, before: float) -> None:
    """Append this pass's [load at start, load now] to `run`/bench_load.json (a resumed run has several)."""
    import json

    f = run / "bench_load.json"
    passes = json.loads(f.read_text()) if f.is_file() else []
    atomic_write(f, json.dumps(passes + [[before, os.getloadavg()[0]]]))


def run_load_sentence(runs: list[Path]) -> str:
    """What the machine's load was while benchmark runs ran (from their bench_load.json), as a sentence:
    whether other work shared the cores is read from it, not assumed."""
    import json

    passes = [pair for r in runs if (r / "bench_load.json").is_file()
              for pair in json.loads((r / "bench_load.json").read_text())]
    if not passes:
        return "The machine's load while it ran was not recorded (the section was written from a finished run)."
    if len(passes) == 1:
        return load_sentence(*passes[0])
    return load_range_sentence(passes, "passes")

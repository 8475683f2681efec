"""`python -m ray_jobs` lists the jobs; each runs as `python -m ray_jobs.<job> --config ...`."""

from __future__ import annotations

import ast
import pkgutil
import re
import sys
from pathlib import Path

# Modules of this package that are shared plumbing, not jobs.
NOT_JOBS = {"__main__", "cli", "plans"}
PACKAGE = Path(__file__).resolve().parent


def jobs() -> dict[str, str]:
    """Every `ray_jobs/<job>.py`, found on disk, with the first line of its docstring, read without
    importing it (a job whose optional dependency is missing is still listed). A new job module is
    listed without anyone editing this file."""
    found = {}
    for mod in sorted(pkgutil.iter_modules([str(PACKAGE)]), key=lambda m: m.name):
        if mod.ispkg or mod.name in NOT_JOBS or mod.name.startswith("_"):
            continue
        doc = ast.get_docstring(ast.parse((PACKAGE / f"{mod.name}.py").read_text())) or ""
        first = doc.strip().splitlines()[0] if doc.strip() else "(no description)"
        # "Spry fine-tuning: `python -m ...`" -> "Spry fine-tuning": the command is printed below anyway
        found[mod.name] = re.split(r":\s*`", first, maxsplit=1)[0].rstrip(".:")
    return found


def _demo_config(folder: str) -> str:
    """laptop.yaml, or (a job with several laptop-scale recipes, e.g. specialize) the first of them."""
    d = PACKAGE.parent / "configs" / folder
    if (d / "laptop.yaml").is_file() or not d.is_dir():
        return "laptop.yaml"
    names = sorted(p.name for p in d.glob("*.yaml") if p.stem not in ("tiny", "cluster"))
    return names[0] if names else "laptop.yaml"


def main() -> int:
    from ray_jobs.cli import CONFIG_DIRS

    print("tailor jobs (python -m ray_jobs.<job> --config <config> [--set key=value]):\n")
    for job, what in jobs().items():
        folder = CONFIG_DIRS.get(job, job)
        print(f"  {job:<10} {what}\n  {'':<10} python -m ray_jobs.{job} --config configs/{folder}/{_demo_config(folder)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""README.md and docs/ stay true: every relative link resolves and every `python -m X` they quote
names a module that exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", REPO / "BENCHMARKS.md", REPO / "cluster" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
MODULE = re.compile(r"python -m ([A-Za-z_][\w.]*)")


def _ids(pages):
    return [str(p.relative_to(REPO)) for p in pages]


def test_readme_is_a_short_way_in():
    assert len((REPO / "README.md").read_text().splitlines()) <= 300


def test_every_job_has_a_page():
    from ray_jobs.__main__ import jobs

    missing = [job for job in jobs() if not (REPO / "docs" / f"{job}.md").is_file()]
    assert not missing, f"jobs without docs/<job>.md: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+://|^mailto:|^#", target):
            continue
        path = target.split("#", 1)[0]
        if not (page.parent / path).exists():
            broken.append(target)
    assert not broken, f"{page.name}: links that resolve to nothing: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_quoted_modules_exist(page):
    missing = sorted({m.rstrip(".") for m in MODULE.findall(page.read_text())
                      if importlib.util.find_spec(m.rstrip(".")) is None})
    assert not missing, f"{page.name} quotes `python -m` for modules that do not exist: {missing}"


def test_every_benchmark_is_listed():
    listed = set(re.findall(r"python -m bench\.(\w+)", (REPO / "docs" / "benchmarks.md").read_text()))
    modules = {p.stem for p in (REPO / "bench").glob("*.py")} - {"__init__", "report"}
    assert modules <= listed, f"benchmarks missing from docs/benchmarks.md: {sorted(modules - listed)}"

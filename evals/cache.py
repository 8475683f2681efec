"""Answers cached per (model, dataset, evaluator) in the run directory, one JSON line per item: a
resumed run reads them and skips every item already answered. Lines are appended and flushed one
at a time, so a crash loses at most the line being written (a torn last line is ignored)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from core.runs import _jsonable


def slug(name: str) -> str:
    """A file-name-safe form of a model or dataset name (paths become their last parts)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip("/")).strip("_") or "_"


class AnswerCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, model: str, dataset: str, evaluator: str) -> Path:
        return self.root / slug(model) / slug(dataset) / f"{evaluator}.jsonl"

    def load(self, model: str, dataset: str, evaluator: str) -> dict[str, dict]:
        """item id -> its last record (a retried item's newer line wins)."""
        p = self.path(model, dataset, evaluator)
        out: dict[str, dict] = {}
        if not p.exists():
            return out
        for line in p.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            out[str(rec["item"])] = rec
        return out

    def done(self, model: str, dataset: str, evaluator: str) -> set[str]:
        """Items with an answer; items that ended in a backend error are asked again."""
        return {k for k, r in self.load(model, dataset, evaluator).items() if r.get("status") == "ok"}

    def append(self, model: str, dataset: str, evaluator: str, records: list[dict]) -> None:
        p = self.path(model, dataset, evaluator)
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "a", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(_jsonable(r), ensure_ascii=False) + "\n")
            f.flush()

    def all_records(self) -> list[dict]:
        """Every final record under the cache, with its model, dataset and evaluator."""
        out = []
        for p in sorted(self.root.glob("*/*/*.jsonl")):
            model, dataset, evaluator = p.parent.parent.name, p.parent.name, p.stem
            for rec in self.load(model, dataset, evaluator).values():
                out.append({"model": model, "dataset": dataset, "evaluator": evaluator, **rec})
        return out


__all__ = ["AnswerCache", "slug"]

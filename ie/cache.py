"""The per-input answer cache in the run directory: every LLM answer (or score) is appended, keyed
by input id, method and a hash of exactly what was asked, right after the backend returns it.
A resumed run replays each dialogue and takes every answer it finds here instead of asking
again; since a dialogue's next question depends only on earlier answers, the replay asks the
same questions and a killed job continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def request_key(kind: str, prompt: Any, extra: Any) -> str:
    blob = json.dumps({"kind": kind, "prompt": prompt, "extra": extra}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class AnswerCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._data: dict[tuple[str, str, str], Any] = {}
        if self.path.is_file():
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        r = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line torn by a kill mid-write: that answer is asked again
                    self._data[(r["id"], r["method"], r["key"])] = r["value"]
        self.loaded = len(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def get(self, id_: str, method: str, key: str) -> Any | None:
        return self._data.get((id_, method, key))

    def put_many(self, rows: list[tuple[str, str, str, Any]]) -> None:
        """Append (id, method, key, value) rows and fsync: a kill after this loses none of them."""
        if not rows:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            for id_, method, key, value in rows:
                self._data[(id_, method, key)] = value
                f.write(json.dumps({"id": id_, "method": method, "key": key, "value": value}, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

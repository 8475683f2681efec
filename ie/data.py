"""The JSONL input format, one object per line, per task (gold is optional for prediction only):

    ner: {"id": "7", "text": "Obama met Lee", "entities": [{"type": "person", "text": "Obama", "start": 0, "end": 5}]}
         (start/end are character offsets into text, end exclusive; optional, used for span-level F1)
    re:  {"id": "7", "text": "...", "triples": [{"relation": "spouse", "subject": "A", "object": "B"}]}
    ee:  {"id": "7", "text": "...", "events": [{"type": "Life.Die.Unspecified", "trigger": "killed",
                                                "arguments": [{"role": "Victim", "text": "members"}]}]}

`id` may be a string or a number (kept as a string); every type, relation, event type and role
must be in the schema. A line that breaks the format raises InputError naming the file and line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.data import iter_jsonl
from ie.errors import InputError
from ie.schema import Schema

GOLD_KEY = {"ner": "entities", "re": "triples", "ee": "events"}


@dataclass
class Example:
    id: str
    text: str
    gold: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, task: str) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, GOLD_KEY[task]: self.gold}


def _str(obj: dict, key: str, where: str, fail) -> str:
    v = obj.get(key)
    if not isinstance(v, str):
        fail(f"{where}: '{key}' must be a string, got {v!r}")
    return v


def check_record(obj: Any, task: str, schema: Schema, fail) -> Example:
    """The Example in `obj`, or fail(message) (which raises) naming what is wrong."""
    if not isinstance(obj, dict):
        fail(f"expected a JSON object, got {type(obj).__name__}")
    for need in ("id", "text"):
        if need not in obj:
            fail(f"missing '{need}'")
    if not isinstance(obj["id"], (str, int)) or isinstance(obj["id"], bool):
        fail(f"'id' must be a string or an integer, got {obj['id']!r}")
    text = _str(obj, "text", "the line", fail)
    key = GOLD_KEY[task]
    other = {k for k in GOLD_KEY.values() if k != key and k in obj}
    if other:
        fail(f"has {sorted(other)} but the task is {task}, whose gold goes in '{key}'")
    gold = obj.get(key, [])
    if not isinstance(gold, list):
        fail(f"'{key}' must be a list")
    for i, g in enumerate(gold):
        where = f"{key}[{i}]"
        if not isinstance(g, dict):
            fail(f"{where} must be an object")
        if task == "ner":
            t = _str(g, "type", where, fail)
            if t not in schema.entity_types:
                fail(f"{where}: type {t!r} is not in the schema ({', '.join(schema.entity_types)})")
            s = _str(g, "text", where, fail)
            if ("start" in g) != ("end" in g):
                fail(f"{where}: give both 'start' and 'end' or neither")
            if "start" in g:
                a, b = g["start"], g["end"]
                if not (isinstance(a, int) and isinstance(b, int) and 0 <= a < b <= len(text)):
                    fail(f"{where}: offsets {a!r}..{b!r} are not inside the text (length {len(text)})")
                if text[a:b] != s:
                    fail(f"{where}: text[{a}:{b}] is {text[a:b]!r}, not {s!r}")
        elif task == "re":
            r = _str(g, "relation", where, fail)
            if r not in schema.relations:
                fail(f"{where}: relation {r!r} is not in the schema")
            _str(g, "subject", where, fail)
            _str(g, "object", where, fail)
        else:
            t = _str(g, "type", where, fail)
            if t not in schema.events:
                fail(f"{where}: event type {t!r} is not in the schema")
            args = g.get("arguments", [])
            if not isinstance(args, list):
                fail(f"{where}: 'arguments' must be a list")
            for j, a in enumerate(args):
                if not isinstance(a, dict):
                    fail(f"{where}.arguments[{j}] must be an object")
                role = _str(a, "role", f"{where}.arguments[{j}]", fail)
                if role not in schema.events[t].roles:
                    fail(f"{where}.arguments[{j}]: role {role!r} is not a role of {t} "
                         f"({', '.join(schema.events[t].roles)})")
                _str(a, "text", f"{where}.arguments[{j}]", fail)
    return Example(str(obj["id"]), text, gold)


def load_jsonl(path: str | Path, task: str, schema: Schema, limit: int | None = None) -> list[Example]:
    """Read and check a task's JSONL file; blank lines are skipped, ids must be unique."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "data file not found")
    out: list[Example] = []
    seen: dict[str, int] = {}
    fmt = f" (the {task} format: see ie/data.py or docs/chatie.md)"
    for n, obj in iter_jsonl(path, error=lambda n, msg: InputError(path, n, msg + fmt)):

        def fail(msg: str, n=n):
            raise InputError(path, n, msg + fmt)

        ex = check_record(obj, task, schema, fail)
        if ex.id in seen:
            fail(f"id {ex.id!r} was already used on line {seen[ex.id]}")
        seen[ex.id] = n
        out.append(ex)
        if limit is not None and len(out) >= limit:
            break
    return out


def write_jsonl(path: str | Path, examples: list[Example], task: str) -> Path:
    from core.runs import atomic_write

    return atomic_write(path, "".join(json.dumps(e.to_json(task), ensure_ascii=False) + "\n" for e in examples))

"""Converters from the shipped datasets' own formats to our JSONL format (ie.data):

- wnut17: `test.jsonl` (tokens, BIO ner_tags) -> NER with character offsets; the text is the
  tokens joined by single spaces, so offsets index that text.
- fewrel: `{P-id: [{tokens, h: [name, id, [[positions]]], t: ...}]}` plus `pid2name.json` -> RE,
  one gold triple per sentence, relation named by pid2name, subject and object as written in the
  sentence (FewRel's own h/t names are lower-cased).
- wikievents: documents -> one input per sentence (its tokens joined by spaces), with the events whose trigger is in it and
  those of their arguments that lie in the same sentence (WikiEvents arguments may sit in other
  sentences of the document; a sentence-level chat cannot find those).
"""

from __future__ import annotations

import json
from pathlib import Path

from core.data import iter_jsonl
from ie.data import Example
from ie.errors import InputError


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    return list(iter_jsonl(path, error=lambda n, msg: InputError(path, n, msg)))


def wnut17(path: str | Path, limit: int | None = None) -> list[Example]:
    path = Path(path)
    if path.is_dir():
        path = path / "test.jsonl"
    if not path.is_file():
        raise InputError(path, None, "WNUT-17 file not found (expected test.jsonl with tokens and ner_tags)")
    out = []
    for n, row in _read_jsonl(path):
        toks, tags = row.get("tokens"), row.get("ner_tags")
        if not isinstance(toks, list) or not isinstance(tags, list) or len(toks) != len(tags):
            raise InputError(path, n, "expected 'tokens' and 'ner_tags' lists of the same length")
        starts, pos = [], 0
        for tok in toks:
            starts.append(pos)
            pos += len(tok) + 1
        text = " ".join(toks)
        ents, cur = [], None
        for i, tag in enumerate(list(tags) + ["O"]):
            if cur is not None and not (isinstance(tag, str) and tag.startswith("I-") and tag[2:] == cur[0]):
                a, b = starts[cur[1]], starts[i - 1] + len(toks[i - 1])
                ents.append({"type": cur[0], "text": text[a:b], "start": a, "end": b})
                cur = None
            if isinstance(tag, str) and (tag.startswith("B-") or (tag.startswith("I-") and cur is None)):
                cur = (tag[2:], i)
        out.append(Example(str(row.get("id", n - 1)), text, ents))
        if limit is not None and len(out) >= limit:
            break
    return out


def _span(tokens: list[str], positions: list[list[int]]) -> str:
    first = positions[0]
    return " ".join(tokens[i] for i in first)


def fewrel(path: str | Path, per_relation: int = 10, relations: int | None = None,
           pid2name: str | Path | None = None) -> list[Example]:
    path = Path(path)
    if path.is_dir():
        cands = sorted(p for p in path.glob("*.json") if p.name != "pid2name.json")
        if not cands:
            raise InputError(path, None, "no FewRel JSON file in this folder")
        path = cands[0]
    names_path = Path(pid2name) if pid2name else path.parent / "pid2name.json"
    if not names_path.is_file():
        raise InputError(names_path, None, "pid2name.json not found (it names FewRel's relations)")
    names = json.loads(names_path.read_text())
    data = json.loads(path.read_text())
    out = []
    for pid in list(data)[:relations]:
        if pid not in names:
            raise InputError(names_path, None, f"relation {pid} has no name")
        for k, row in enumerate(data[pid][:per_relation]):
            toks = row["tokens"]
            out.append(Example(f"{pid}-{k}", " ".join(toks), [{
                "relation": names[pid][0], "subject": _span(toks, row["h"][2]), "object": _span(toks, row["t"][2])}]))
    return out


def wikievents(path: str | Path, docs: int | None = None, limit: int | None = None) -> list[Example]:
    path = Path(path)
    if path.is_dir():
        path = path / "test.jsonl"
    if not path.is_file():
        raise InputError(path, None, "WikiEvents file not found (expected test.jsonl)")
    out = []
    for n, doc in _read_jsonl(path)[:docs]:
        ents = {e["id"]: e for e in doc.get("entity_mentions", [])}
        for si, sent in enumerate(doc["sentences"]):
            toks = sent[0]
            events = []
            for ev in doc.get("event_mentions", []):
                if ev["trigger"]["sent_idx"] != si:
                    continue
                # argument text from the document's tokens, spaced as the sentence text is
                args = [{"role": x["role"], "text": " ".join(doc["tokens"][ents[x["entity_id"]]["start"]:
                                                                           ents[x["entity_id"]]["end"]])}
                        for x in ev["arguments"] if ents.get(x["entity_id"], {}).get("sent_idx") == si]
                events.append({"type": ev["event_type"], "trigger": ev["trigger"]["text"], "arguments": args})
            # the sentences' character offsets do not always index doc['text']: join the tokens instead
            out.append(Example(f"{doc['doc_id']}#{si}", " ".join(t[0] for t in toks), events))
            if limit is not None and len(out) >= limit:
                return out
    return out

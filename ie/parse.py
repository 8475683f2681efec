"""Parsers for what an LLM answers: a list of schema types (stage I) and rows of cells (stage II
tables), from markdown tables, tuples, bracketed lists, bullets, 'a: b' lines or plain prose.

Every parser returns a Parsed with a status: 'ok' (items found), 'none' (the answer says there
is nothing), 'refused' (the model declined) or 'unparsed' (nothing usable). Nothing raises on
a malformed answer: the caller counts the status and moves on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

OK, NONE, REFUSED, UNPARSED = "ok", "none", "refused", "unparsed"
PARSED = (OK, NONE)  # the statuses that count as a parsed answer

_REFUSAL = re.compile(
    r"\b(i\s*(?:am|'m)\s+(?:sorry|unable|not able)|i\s+(?:can(?:no|')t|cannot|won't|will not)\s+"
    r"(?:help|assist|provide|do|answer|extract|comply|identify)|as an ai\b|i apologi[sz]e)", re.I)
_NONE_WORDS = {"none", "no", "n/a", "na", "nil", "nothing", "null", "-", "--", "—", "empty", "not mentioned",
               "not applicable", "unknown", "not given", "not specified", "not present", "none found"}
_NONE_START = re.compile(
    r"^\s*(?:none\b|no\b[.,!]?|nothing\b|there (?:are|is) no\b|no (?:such |relevant )?(?:entit|relation|event|type|"
    r"pair|argument|match)|the (?:text|sentence) (?:does not|doesn't) (?:contain|mention|have))", re.I)
_HEADER_WORDS = {"type", "entity", "entities", "entity type", "name", "entity name", "subject", "object", "head",
                 "tail", "role", "argument", "arguments", "relation", "relation type", "event", "event type",
                 "subject entity", "object entity", "value", "text", "mention", "label"}
_STRIP = " \t\"'`*_.,;:!?“”‘’«»<>"


@dataclass
class Parsed:
    items: list = field(default_factory=list)
    status: str = UNPARSED

    @property
    def parsed(self) -> bool:
        return self.status in PARSED


def norm_type(s: str) -> str:
    """A type name compared loosely: case, CamelCase, underscores, hyphens and spacing do not matter."""
    s = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", s.strip(_STRIP))
    return re.sub(r"[\s_\-/]+", " ", s.lower()).strip()


def _segments(name: str) -> tuple[str, ...]:
    return tuple(x for x in (norm_type(part) for part in name.split(".")) if x)


class TypeNames:
    """The schema's type names, looked up loosely (norm_type), and for dotted names such as
    WikiEvents' 'Life.Die.Unspecified' also by a part of the name. Qwen2.5-Coder-1.5B answered 148 of
    492 WikiEvents stage I questions with shortened names ('Life.Die', 'Justice.ChargeIndict',
    'GenericCrime'). A shortened name resolves to the one type whose segments hold it as a
    contiguous run; where several do, to the one whose other segments are only 'Unspecified' (the
    generic subtype: 'Conflict.Attack' is Conflict.Attack.Unspecified, not .DetonateExplode); else
    it is ambiguous and dropped. Undotted names (entity and relation types) match exactly."""

    def __init__(self, allowed):
        self.by_norm = {norm_type(t): t for t in allowed}
        self._segs = {t: _segments(t) for t in allowed}

    def exact(self, cell: str) -> str | None:
        return self.by_norm.get(norm_type(cell))

    def get(self, cell: str) -> str | None:
        t = self.exact(cell)
        if t is not None:
            return t
        want = _segments(cell)
        if not want:
            return None
        n = len(want)
        # per type that holds the run: what follows it, at each place it occurs
        after = {t: [segs[i + n:] for i in range(len(segs) - n + 1) if segs[i:i + n] == want]
                 for t, segs in self._segs.items() if len(segs) > n}
        hits = [t for t, tails in after.items() if tails]
        if len(hits) > 1:
            hits = [t for t in hits if ("unspecified",) in after[t]]
        return hits[0] if len(hits) == 1 else None


def clean_cell(s: str) -> str:
    s = re.sub(r"\s+", " ", s).strip(_STRIP + " ")
    return s


def is_none(s: str) -> bool:
    return clean_cell(s).lower() in _NONE_WORDS


def is_refusal(answer: str) -> bool:
    return bool(_REFUSAL.search(answer))


def says_none(answer: str) -> bool:
    return bool(_NONE_START.match(answer.strip().strip(_STRIP))) or is_none(answer)


def _split_cells(inner: str) -> list[str]:
    """Split on commas outside quotes: ('New York, NY', "x") stays two cells."""
    cells = re.findall(r"\"([^\"]*)\"|'((?:[^']|'(?=\w))*)'|([^,]+)", inner)
    return [clean_cell(next(c for c in groups if c) if any(groups) else "") for groups in cells]


def parse_type_list(answer: str, allowed: list[str]) -> Parsed:
    """Stage I: which of `allowed` the answer names, in schema order. A bracketed or parenthesised
    list is read first; failing that, the schema's names are looked for anywhere in the answer
    (the paper falls back to the whole answer). Names outside the schema are dropped."""
    names = TypeNames(allowed)
    by_norm = names.by_norm
    found: list[str] = []
    for inner in re.findall(r"[\[(]([^\[\]()]*)[\])]", answer):
        for cell in _split_cells(inner):
            t = names.get(cell)
            if t is not None and t not in found:
                found.append(t)
    if not found:
        text = " " + norm_type(answer.replace("\n", " ")) + " "
        # longest names first, so 'creative work' is not also read as 'work'
        for key in sorted(by_norm, key=len, reverse=True):
            pat = r"(?<![a-z0-9])" + re.escape(key) + r"(?![a-z0-9])"
            if re.search(pat, text):
                found.append(by_norm[key])
                text = re.sub(pat, " ", text)
    if found:
        return Parsed([t for t in allowed if t in found], OK)
    if is_refusal(answer):
        return Parsed([], REFUSED)
    if says_none(answer) or re.search(r"[\[(]\s*(?:none|)\s*[\])]", answer, re.I):
        return Parsed([], NONE)
    return Parsed([], UNPARSED)


def _table_rows(lines: list[str]) -> list[list[str]]:
    rows: list[list[str]] = []
    for i, line in enumerate(lines):
        s = line.strip()
        if s.count("|") < 1:
            continue
        cells = [clean_cell(c) for c in s.strip("|").split("|")]
        if all(re.fullmatch(r":?-{2,}:?|", c.replace(" ", "")) for c in cells):
            # a separator row: the row above it was the header
            if rows and i > 0 and lines[i - 1].strip().count("|") >= 1:
                rows.pop()
            continue
        rows.append(cells)
    return rows


def parse_rows(answer: str) -> Parsed:
    """Stage II: rows of cells. Markdown tables (header and separator rows skipped), then
    tuples '(a, b)' or '[a, b]', then bullet or numbered lines split on ':', ' - ', '|' or ',',
    then a single comma-separated line. Header-like rows and rows of only 'None' are dropped."""
    lines = [ln for ln in answer.splitlines() if ln.strip()]
    rows = _table_rows(lines)
    if not rows:
        for inner in re.findall(r"\(([^()]*)\)|\[([^\[\]]*)\]", answer):
            cells = _split_cells(inner[0] or inner[1])
            if cells and any(cells):
                rows.append(cells)
    if not rows:
        for line in lines:
            m = re.match(r"^\s*(?:[-*•+]|\d+[.)])\s+(.*)$", line)
            if not m:
                continue
            body = m.group(1)
            parts = re.split(r"\s*:\s+|\s+[-–—>]+\s+|\s*,\s*", body, maxsplit=1 if ":" in body else -1)
            rows.append([clean_cell(p) for p in parts])
    if not rows and len(lines) == 1 and not is_refusal(answer) and not says_none(answer):
        parts = lines[0].split(",")
        # one line of short parts is a bare list of names; a long sentence is prose, not a list
        if all(len(p.split()) <= 6 for p in parts):
            rows.append([clean_cell(p) for p in parts])
    rows = [[c for c in r] for r in rows if any(c for c in r)]
    rows = [r for r in rows if not all(norm_type(c) in _HEADER_WORDS for c in r if c)]
    real = [r for r in rows if not all(is_none(c) or not c for c in r)]
    if real:
        return Parsed(real, OK)
    if rows or says_none(answer):
        return Parsed([], NONE)
    if is_refusal(answer):
        return Parsed([], REFUSED)
    return Parsed([], UNPARSED)


def _drop(cells: list[str], names: set[str]) -> list[str]:
    return [c for c in cells if c and norm_type(c) not in names and not is_none(c)]


def entities_from(answer: str, type_name: str) -> Parsed:
    """NER stage II: the entity strings of one type. Cells naming the type, headers and 'None' go."""
    p = parse_rows(answer)
    if not p.parsed:
        return p
    drop = {norm_type(type_name)} | _HEADER_WORDS
    out = []
    for row in p.items:
        for c in _drop(row, drop):
            if c not in out:
                out.append(c)
    return Parsed(out, OK if out else NONE)


def pairs_from(answer: str, relation: str) -> Parsed:
    """RE stage II: (subject, object) pairs. A row naming the relation in a middle cell
    (subject | relation | object) keeps its outer cells; other rows need exactly two cells."""
    p = parse_rows(answer)
    if not p.parsed:
        return p
    drop = {norm_type(relation)}
    out = []
    for row in p.items:
        cells = _drop(row, drop)
        if len(cells) == 2 and (cells[0], cells[1]) not in out:
            out.append((cells[0], cells[1]))
    if out:
        return Parsed(out, OK)
    return Parsed([], NONE if all(len(_drop(r, drop)) < 2 for r in p.items) else UNPARSED)


def arguments_from(answer: str, roles: tuple[str, ...] | list[str]) -> Parsed:
    """EE stage II: (role, argument) pairs for the schema's roles; empty roles ('None') are skipped."""
    p = parse_rows(answer)
    if not p.parsed:
        return p
    by_norm = {norm_type(r): r for r in roles}
    out = []
    for row in p.items:
        role = next((by_norm[norm_type(c)] for c in row if norm_type(c) in by_norm), None)
        if role is None:
            continue
        for c in row:
            if norm_type(c) in by_norm or not c or is_none(c):
                continue
            # one cell may list several arguments of the same role
            for arg in [a for a in (clean_cell(x) for x in re.split(r";|\band\b(?=\s+[A-Z])", c)) if a]:
                if (role, arg) not in out:
                    out.append((role, arg))
    if out:
        return Parsed(out, OK)
    has_roles = any(norm_type(c) in by_norm for r in p.items for c in r)
    return Parsed([], NONE if has_roles else UNPARSED)


def single_turn_from(answer: str, task: str, schema) -> Parsed:
    """The single-turn baseline's one answer: rows of (type, entity), (subject, relation, object)
    or (event type, role, argument); rows whose type is outside the schema are dropped."""
    p = parse_rows(answer)
    if not p.parsed:
        return p
    types = TypeNames(schema.entity_types if task == "ner" else schema.relations if task == "re" else schema.events)
    out, typed_rows = [], 0
    for row in p.items:
        cells = [c for c in row if c]
        idx = next((i for i, c in enumerate(cells) if types.exact(c) is not None), None)
        if idx is None and cells and types.get(cells[0]) is not None:
            idx = 0  # a shortened type name is read only from the type column, never from an argument
        if idx is None:
            continue
        typed_rows += 1
        t = types.get(cells[idx])
        rest = [c for i, c in enumerate(cells) if i != idx and not is_none(c)]
        if task == "ner":
            for c in rest:
                item = (t, c)
                if item not in out:
                    out.append(item)
        elif task == "re":
            if len(rest) == 2 and (t, rest[0], rest[1]) not in out:
                out.append((t, rest[0], rest[1]))
        else:
            roles = {norm_type(r): r for r in schema.events[t].roles}
            ridx = next((i for i, c in enumerate(rest) if norm_type(c) in roles), None)
            if ridx is None:
                # the event type was named without a usable argument: it still counts as detected
                if (t, "", "") not in out:
                    out.append((t, "", ""))
                continue
            role = roles[norm_type(rest[ridx])]
            for c in rest[:ridx] + rest[ridx + 1:]:
                if (t, role, c) not in out:
                    out.append((t, role, c))
    if out:
        return Parsed(out, OK)
    return Parsed([], NONE if typed_rows or not p.items else UNPARSED)

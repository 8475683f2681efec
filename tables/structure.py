"""HTML structure tokens in UniTable's `<td></td>` / `<td>[]</td>` form: the vocabulary, the check
that a sequence is well formed, the logical grid it describes, PubTabNet's conversion into it
(the preprocessing the release lacks) and filling the `[]` slots with cell text."""

from __future__ import annotations

import html as htmllib
from dataclasses import dataclass

MAX_SPAN = 30
CELL_EMPTY, CELL_FULL = "<td></td>", "<td>[]</td>"
CELL_OPEN, CLOSE_FULL, CLOSE_EMPTY = "<td", ">[]</td>", "></td>"
SECTION = ["<thead>", "</thead>", "<tbody>", "</tbody>", "<tr>", "</tr>"]
SPANS = [f' rowspan="{k}"' for k in range(2, MAX_SPAN + 1)] + [f' colspan="{k}"' for k in range(2, MAX_SPAN + 1)]
STRUCTURE_TOKENS = SECTION + [CELL_EMPTY, CELL_FULL, CELL_OPEN, CLOSE_FULL, CLOSE_EMPTY] + SPANS


class StructureError(ValueError):
    """A malformed structure (unbalanced tags, a cell outside a row): names the example."""

    def __init__(self, example: str, message: str):
        self.example = example
        super().__init__(f"{example}: {message}")


@dataclass(frozen=True)
class Cell:
    row: int
    col: int
    rowspan: int
    colspan: int
    filled: bool  # `[]`: has content and a box


def parse_cells(tokens: list[str], example: str = "<structure>") -> list[Cell]:
    """The cells in reading order with their grid positions; StructureError if malformed."""
    cells: list[Cell] = []
    occupied: set[tuple[int, int]] = set()
    section = None
    row = -1
    in_row = False
    col = 0
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t in ("<thead>", "<tbody>"):
            if section is not None or in_row:
                raise StructureError(example, f"{t} at token {i} opens inside {section or '<tr>'}")
            section = t
        elif t in ("</thead>", "</tbody>"):
            if section != t.replace("/", "") or in_row:
                raise StructureError(example, f"{t} at token {i} closes nothing open (unbalanced tags)")
            section = None
        elif t == "<tr>":
            if in_row:
                raise StructureError(example, f"<tr> at token {i} inside an open <tr> (unbalanced tags)")
            in_row, row, col = True, row + 1, 0
        elif t == "</tr>":
            if not in_row:
                raise StructureError(example, f"</tr> at token {i} without <tr> (unbalanced tags)")
            in_row = False
        elif t in (CELL_EMPTY, CELL_FULL, CELL_OPEN):
            if not in_row:
                raise StructureError(example, f"cell at token {i} outside a <tr> (unbalanced tags)")
            rs = cs = 1
            if t == CELL_OPEN:
                j = i + 1
                while j < len(tokens) and tokens[j] in SPANS:
                    k = int(tokens[j].split('"')[1])
                    if "rowspan" in tokens[j]:
                        rs = k
                    else:
                        cs = k
                    j += 1
                if j >= len(tokens) or tokens[j] not in (CLOSE_FULL, CLOSE_EMPTY):
                    raise StructureError(example, f"'<td' at token {i} is not closed by '>[]</td>' or '></td>'")
                filled = tokens[j] == CLOSE_FULL
                i = j
            else:
                filled = t == CELL_FULL
            while (row, col) in occupied:
                col += 1
            cells.append(Cell(row, col, rs, cs, filled))
            for r in range(row, row + rs):
                for c in range(col, col + cs):
                    occupied.add((r, c))
            col += cs
        else:
            raise StructureError(example, f"token {i} {t!r} is not a structure token")
        i += 1
    if in_row or section is not None:
        raise StructureError(example, f"{'<tr>' if in_row else section} is never closed (unbalanced tags)")
    return cells


def repair(tokens: list[str]) -> list[str]:
    """A decoded sequence made well formed: tokens that would break it are dropped, open rows and
    sections closed. A model's output goes through this before parse_cells."""
    out: list[str] = []
    section, in_row, in_cell = None, False, False
    for t in tokens:
        if in_cell:
            if t in SPANS:
                out.append(t)
                continue
            if t in (CLOSE_FULL, CLOSE_EMPTY):
                out.append(t)
                in_cell = False
                continue
            out.append(CLOSE_EMPTY)  # '<td' never closed: close it empty
            in_cell = False
        if t in ("<thead>", "<tbody>"):
            if in_row:
                out.append("</tr>")
                in_row = False
            if section:
                out.append(section.replace("<", "</"))
            out.append(t)
            section = t
        elif t in ("</thead>", "</tbody>"):
            if section == t.replace("/", ""):
                if in_row:
                    out.append("</tr>")
                    in_row = False
                out.append(t)
                section = None
        elif t == "<tr>":
            if in_row:
                out.append("</tr>")
            out.append(t)
            in_row = True
        elif t == "</tr>":
            if in_row:
                out.append(t)
                in_row = False
        elif t in (CELL_EMPTY, CELL_FULL, CELL_OPEN):
            if not in_row:
                out.append("<tr>")
                in_row = True
            out.append(t)
            in_cell = t == CELL_OPEN
    if in_cell:
        out.append(CLOSE_EMPTY)
    if in_row:
        out.append("</tr>")
    if section:
        out.append(section.replace("<", "</"))
    return out


def is_well_formed(tokens: list[str]) -> bool:
    try:
        parse_cells(tokens)
        return True
    except StructureError:
        return False


def cell_tokens(rowspan: int, colspan: int, filled: bool) -> list[str]:
    if rowspan == 1 and colspan == 1:
        return [CELL_FULL if filled else CELL_EMPTY]
    out = [CELL_OPEN]
    if rowspan > 1:
        out.append(f' rowspan="{rowspan}"')
    if colspan > 1:
        out.append(f' colspan="{colspan}"')
    return out + [CLOSE_FULL if filled else CLOSE_EMPTY]


def to_html(tokens: list[str], contents: list[str] | None = None) -> str:
    """Filled-in HTML: the k-th `[]` gets contents[k] (escaped); empty strings where missing."""
    parts, k = [], 0
    contents = contents or []
    for t in tokens:
        if t == CELL_FULL or t == CLOSE_FULL:
            text = htmllib.escape(contents[k], quote=False) if k < len(contents) else ""
            k += 1
            parts.append(("<td>" if t == CELL_FULL else ">") + text + "</td>")
        elif t == CLOSE_EMPTY:
            parts.append("></td>")
        else:
            parts.append(t)
    return "<html><body><table>" + "".join(parts) + "</table></body></html>"


def pubtabnet_to_unitable(structure: list[str], cells: list[dict], example: str) -> tuple[list[str], list[int]]:
    """PubTabNet's `<td>`,`</td>` tokens and cell list -> the `<td>[]</td>` form, plus the indices
    of the cells that are `[]` (those with a bbox: content UniTable must box and read)."""
    out: list[str] = []
    filled_idx: list[int] = []
    ci = 0
    i = 0
    while i < len(structure):
        t = structure[i]
        if t in ("<td>", "<td"):
            if ci >= len(cells):
                raise StructureError(example, f"more <td> than the {len(cells)} cells listed")
            filled = "bbox" in cells[ci]
            if filled:
                filled_idx.append(ci)
            if t == "<td>":
                if i + 1 >= len(structure) or structure[i + 1] != "</td>":
                    raise StructureError(example, f"<td> at token {i} is not followed by </td> (unbalanced tags)")
                out.append(CELL_FULL if filled else CELL_EMPTY)
                i += 2
            else:
                out.append(CELL_OPEN)
                j = i + 1
                while j < len(structure) and structure[j] not in (">",):
                    attr = structure[j]
                    if attr not in SPANS:
                        raise StructureError(example, f"cell attribute {attr!r} at token {j} is not a span of 2..{MAX_SPAN}")
                    out.append(attr)
                    j += 1
                if j + 1 >= len(structure) or structure[j + 1] != "</td>":
                    raise StructureError(example, f"'<td' at token {i} is not closed by '>' '</td>' (unbalanced tags)")
                out.append(CLOSE_FULL if filled else CLOSE_EMPTY)
                i = j + 2
            ci += 1
            continue
        out.append(t)
        i += 1
    if ci != len(cells):
        raise StructureError(example, f"{len(cells)} cells listed but {ci} <td> in the structure")
    parse_cells(out, example)  # balanced, every cell in a row
    return out, filled_idx


def pubtabnet_html(structure: list[str], cells: list[dict]) -> str:
    """The ground-truth HTML exactly as PubTabNet's evaluation builds it (cell tokens after `<td>`/`>`)."""
    code = list(structure)
    slots = [i for i, t in enumerate(code) if t in ("<td>", ">")]
    for i, cell in zip(slots[::-1], cells[::-1]):
        if cell.get("tokens"):
            code.insert(i + 1, "".join(htmllib.escape(t, quote=False) if len(t) == 1 else t for t in cell["tokens"]))
    return "<html><body><table>" + "".join(code) + "</table></body></html>"


__all__ = ["CELL_EMPTY", "CELL_FULL", "Cell", "STRUCTURE_TOKENS", "StructureError", "cell_tokens", "is_well_formed", "repair",
           "parse_cells", "pubtabnet_html", "pubtabnet_to_unitable", "to_html"]

"""TEDS and TEDS-struct (Zhong et al., 2020), as PubTabNet's official evaluation computes them,
on one pinned tree edit distance: the `apted` package (APTED, Pawlik & Augsten).

TEDS = 1 - TED(pred, true) / max(|pred|, |true|), where |T| counts every element below <table>
(inline tags such as <b> inside cells included, as the official code counts them); a td rename
costs the normalised Levenshtein distance of the two cells' token lists (characters and inline
tags), any other tag or span mismatch costs 1. TEDS-struct leaves contents out. HTML is parsed
with the standard library, so no lxml is needed.
"""

from __future__ import annotations

from html.parser import HTMLParser

from apted import APTED, Config

VOID = {"br", "img", "hr", "meta", "input", "col", "wbr"}


class _Node:
    __slots__ = ("tag", "attrs", "text", "tail", "children")

    def __init__(self, tag: str, attrs: dict):
        self.tag, self.attrs, self.text, self.tail, self.children = tag, attrs, "", "", []


class _TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = _Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = _Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(_Node(tag, dict(attrs)))

    def handle_endtag(self, tag):
        for k in range(len(self.stack) - 1, 0, -1):  # close up to the matching open tag (lenient, like lxml)
            if self.stack[k].tag == tag:
                del self.stack[k:]
                return

    def handle_data(self, data):
        parent = self.stack[-1]
        if parent.children:
            parent.children[-1].tail += data
        else:
            parent.text += data


def _find(node: _Node, tag: str) -> _Node | None:
    for c in node.children:
        if c.tag == tag:
            return c
        found = _find(c, tag)
        if found is not None:
            return found
    return None


def _count(node: _Node) -> int:
    return sum(1 + _count(c) for c in node.children)


def _tokens(node: _Node, out: list[str]) -> list[str]:
    out.append(f"<{node.tag}>")
    out.extend(node.text)
    for c in node.children:
        _tokens(c, out)
    out.append(f"</{node.tag}>")
    if node.tag != "td":
        out.extend(node.tail)
    return out


class TableTree:
    def __init__(self, tag, colspan=None, rowspan=None, content=None, children=()):
        self.tag, self.colspan, self.rowspan, self.content = tag, colspan, rowspan, content
        self.children = list(children)


def _span(node: _Node, key: str) -> int:
    try:
        return int(node.attrs.get(key) or 1)
    except ValueError:
        return 1


def _tree(node: _Node, structure_only: bool) -> TableTree:
    if node.tag == "td":
        content = [] if structure_only else _tokens(node, [])[1:-1]
        return TableTree("td", _span(node, "colspan"), _span(node, "rowspan"), content)
    return TableTree(node.tag, None, None, None, [_tree(c, structure_only) for c in node.children])


def levenshtein(a, b) -> int:
    """Edit distance of two token sequences, bit-parallel (Hyyroe 2001): one pass over b with
    a's positions as bits of a Python integer, so long cells cost O(len(b)) big-int operations."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    m = len(a)
    peq: dict = {}
    for i, c in enumerate(a):
        peq[c] = peq.get(c, 0) | (1 << i)
    full, top = (1 << m) - 1, 1 << (m - 1)
    pv, mv, score = full, 0, m
    for c in b:
        eq = peq.get(c, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = (mv | ~(xh | pv)) & full
        mh = pv & xh
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = ((ph << 1) | 1) & full
        mh = (mh << 1) & full
        pv = (mh | ~(xv | ph)) & full
        mv = ph & xv
    return score


class _Costs(Config):
    def __init__(self):
        self.memo: dict = {}

    def rename(self, n1, n2):
        key = (id(n1), id(n2))  # APTED asks for the same pair many times
        if key not in self.memo:
            self.memo[key] = self._rename(n1, n2)
        return self.memo[key]

    @staticmethod
    def _rename(n1, n2):
        if n1.tag != n2.tag or n1.colspan != n2.colspan or n1.rowspan != n2.rowspan:
            return 1.0
        if n1.tag == "td" and (n1.content or n2.content):
            return levenshtein(n1.content, n2.content) / max(len(n1.content), len(n2.content))
        return 0.0

    def children(self, node):
        return node.children


def _table(html: str) -> _Node | None:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return _find(builder.root, "table")


def teds(pred: str, true: str, structure_only: bool = False) -> float:
    """TEDS of two HTML tables (0 when either has no <table>)."""
    if not pred or not true:
        return 0.0
    p, t = _table(pred), _table(true)
    if p is None or t is None:
        return 0.0
    n = max(_count(p), _count(t))
    if n == 0:
        return 1.0
    dist = APTED(_tree(p, structure_only), _tree(t, structure_only), _Costs()).compute_edit_distance()
    return 1.0 - float(dist) / n


def teds_struct(pred: str, true: str) -> float:
    return teds(pred, true, structure_only=True)


__all__ = ["levenshtein", "teds", "teds_struct"]

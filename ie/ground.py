"""Grounding: an LLM names entities, arguments and relation ends as strings, not offsets, and the
string is not always in the text. Qwen2.5-Coder-1.5B rewrites a tokenized "Napoleon ' s" as
"Napoleon's", echoes the type's description ("the name of a person, real or fictional, ...") as an
entity, and names things the text only implies ("India", "New Zealand" from a URL). ground() looks a
string up in the text, ignoring case and the spaces a tokenized text adds, and returns the text's own
characters, or None when the text does not hold it. With `chat.ground` (on by default) each
prediction keeps the text's own string and one the text does not hold is dropped, so what a user gets
can be located in the text.

Under exact-match scoring, a dropped string could not have matched the gold, which is taken from the
text (unless a gold string starts or ends inside a word): grounding removes false positives, and turns
a right answer the tokenization had spaced differently into a match.
"""

from __future__ import annotations

import re

from ie.score import EDGE


def _word(c: str) -> bool:
    return c.isascii() and c.isalnum()


def ground(text: str, s: str) -> str | None:
    """The text's own occurrence of `s` (its first; exact case first, then any case), or None. The
    text may space what the answer wrote together ("Napoleon ' s" for "Napoleon's"), not the other way
    round ("newzealand" does not hold "New Zealand"). An ASCII letter or digit at either end of `s`
    must not continue a word of the text ("Ian" is not found in "Italian"); scripts written without
    spaces (Chinese, Japanese) are matched anywhere."""
    words = s.strip(EDGE).split()
    if not words:
        return None
    body = r"\s+".join(r"\s*".join(re.escape(c) for c in w) for w in words)
    first, last = words[0][0], words[-1][-1]
    pattern = (r"(?<![A-Za-z0-9])" if _word(first) else "") + body + (r"(?![A-Za-z0-9])" if _word(last) else "")
    for flags in (0, re.I):
        m = re.search(pattern, text, flags)
        if m:
            return m.group(0)
    return None


def ground_items(task: str, text: str, items: list[tuple]) -> tuple[list[tuple], list[tuple]]:
    """(kept, dropped): every string of every item replaced by the text's own, and the items with a
    string the text does not hold. NER items are (type, entity), RE (relation, subject, object), EE
    (event type, role, argument); an EE item with no role is the event type alone and is kept."""
    kept: list[tuple] = []
    dropped: list[tuple] = []
    for it in items:
        it = tuple(it)
        if task == "ee" and not it[1]:
            g = it
        else:
            head = 2 if task == "ee" else 1  # the type (and the role) are the schema's, not the text's
            found = [ground(text, x) for x in it[head:]]
            if None in found:
                dropped.append(it)
                continue
            g = (*it[:head], *found)
        if g not in kept:
            kept.append(g)
    return kept, dropped

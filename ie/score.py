"""Scoring: micro P/R/F1 by exact match of (type, string) tuples, as the paper scores; per-type
tables; and span-level F1 for NER when the gold has character offsets.

Strings are compared after normalize(): lower case, runs of whitespace made one space, quotes and
punctuation at either end dropped. The paper does not say how it normalised; this is ours.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

# quotes and punctuation that an answer may wrap a name in
EDGE = " \t\n\"'`*_.,;:!?“”‘’«»()[]{}<>"


def normalize(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip(EDGE).lower()


@dataclass
class PRF:
    tp: int = 0
    n_pred: int = 0
    n_gold: int = 0

    @property
    def precision(self) -> float:
        return self.tp / self.n_pred if self.n_pred else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.n_gold if self.n_gold else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def add(self, pred: set, gold: set) -> None:
        self.tp += len(pred & gold)
        self.n_pred += len(pred)
        self.n_gold += len(gold)

    def as_dict(self) -> dict:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "tp": self.tp,
                "pred": self.n_pred, "gold": self.n_gold}


def gold_tuples(task: str, gold: list[dict]) -> set[tuple]:
    """The gold of one input as the tuples predictions are compared with (normalised strings)."""
    if task == "ner":
        return {(g["type"], normalize(g["text"])) for g in gold}
    if task == "re":
        return {(g["relation"], normalize(g["subject"]), normalize(g["object"])) for g in gold}
    return {(e["type"], a["role"], normalize(a["text"])) for e in gold for a in e.get("arguments", [])}


def pred_tuples(task: str, items: Iterable[tuple]) -> set[tuple]:
    if task == "ee":
        return {(t, r, normalize(a)) for t, r, a in items if r and normalize(a)}
    return {(it[0], *(normalize(x) for x in it[1:])) for it in items if all(normalize(x) for x in it[1:])}


def event_types(items: Iterable[tuple]) -> set[str]:
    return {it[0] for it in items}


def micro(pairs: Iterable[tuple[set, set]]) -> PRF:
    """Micro-averaged over inputs: pairs of (predicted, gold) tuple sets, one per input."""
    m = PRF()
    for pred, gold in pairs:
        m.add(set(pred), set(gold))
    return m


def paired_bootstrap_f1(a: list[tuple[set, set]], b: list[tuple[set, set]], samples: int = 2000,
                        seed: int = 0) -> tuple[float, float, float]:
    """Micro F1 of a minus that of b, two methods' (predicted, gold) sets on the same inputs in the
    same order, with a 95% interval from resampling the inputs (both methods on the same draw): a
    difference whose interval holds 0 is within the noise of which inputs were sampled."""
    import numpy as np

    if len(a) != len(b) or not a:
        raise ValueError(f"the two methods must score the same, non-empty inputs; got {len(a)} and {len(b)}")

    def counts(pairs):
        return np.array([[len(set(p) & set(g)), len(p), len(g)] for p, g in pairs], dtype=float).reshape(-1, 3)

    ca, cb = counts(a), counts(b)

    def f1(c):  # rows of (tp, pred, gold) summed per draw -> micro F1 = 2 tp / (pred + gold)
        den = c[..., 1] + c[..., 2]
        return np.divide(2 * c[..., 0], den, out=np.zeros_like(den), where=den > 0)

    diff = float(f1(ca.sum(0)) - f1(cb.sum(0)))
    idx = np.random.default_rng(seed).integers(0, len(a), size=(samples, len(a)))
    draws = f1(ca[idx].sum(1)) - f1(cb[idx].sum(1))
    lo, hi = np.quantile(draws, [0.025, 0.975])
    return diff, float(lo), float(hi)


def per_type(pairs: Iterable[tuple[set, set]]) -> dict[str, PRF]:
    """One PRF per type (the first field of every tuple)."""
    out: dict[str, PRF] = {}
    for pred, gold in pairs:
        for t in {x[0] for x in pred} | {x[0] for x in gold}:
            out.setdefault(t, PRF()).add({x for x in pred if x[0] == t}, {x for x in gold if x[0] == t})
    return dict(sorted(out.items()))


def find_spans(text: str, needle: str) -> list[tuple[int, int]]:
    """Every occurrence of `needle` in `text` that does not cut a word; case-insensitive only when
    no exact-case occurrence exists."""
    needle = needle.strip()
    if not needle:
        return []
    for flags in (0, re.I):
        pat = re.compile(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", flags)
        hits = [(m.start(), m.end()) for m in pat.finditer(text)]
        if hits:
            return hits
    return []


def pred_spans(text: str, items: Iterable[tuple[str, str]]) -> set[tuple[str, int, int]]:
    """An LLM names entities, not offsets: each named string is placed at every occurrence in the
    text. A string that is not in the text gives no span (a false positive at string level only)."""
    return {(t, a, b) for t, s in items for a, b in find_spans(text, s)}


def gold_spans(gold: list[dict]) -> set[tuple[str, int, int]] | None:
    """None when some gold entity has no offsets: span-level F1 is then not defined."""
    if any("start" not in g for g in gold):
        return None
    return {(g["type"], g["start"], g["end"]) for g in gold}


def unmatched_strings(text: str, items: Iterable[tuple[str, str]]) -> int:
    """Predicted entities that do not occur in the text at all (invented or reworded)."""
    return sum(1 for _, s in items if not find_spans(text, s))


def type_counts(gold_sets: Iterable[set]) -> Counter:
    return Counter(x[0] for g in gold_sets for x in g)

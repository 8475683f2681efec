"""The generative evaluator's text metrics, as pure functions on token lists: BLEU-4, ROUGE-L,
keyword precision; tokenization suited to the language (jieba words for Chinese); a mean with its
standard error. The embedding similarity lives in evals.similarity (it loads an encoder)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from core.stats import mean_se  # re-exported: the evaluators' reports import it from here

_EN_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def tokenize(text: str, language: str) -> list[str]:
    """Words: jieba's segmentation for Chinese, word and punctuation runs otherwise (lower-cased).

    Whitespace is not a token. (The reference keeps jieba's whitespace pieces, such as the "\\n  "
    that opens most UHGEval continuations, so two texts that both start a paragraph share an
    n-gram that says nothing about their content.)"""
    if language == "zh":
        import jieba

        jieba.setLogLevel(60)  # its "Building prefix dict" lines on every process start
        return [t for t in jieba.lcut(text) if t.strip()]
    return _EN_TOKEN.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu4(hypothesis: Sequence[str], reference: Sequence[str]) -> float:
    """Sentence BLEU-4 (Papineni et al. 2002): brevity penalty times the geometric mean of the
    clipped 1- to 4-gram precisions, no smoothing, in [0, 1]. 0 when any order has no match.

    The penalty multiplies; UHGEval v0.2.7 divided by it, which gave scores near 10."""
    if not hypothesis or not reference:
        return 0.0
    log_p = 0.0
    for n in range(1, 5):
        hyp = ngrams(hypothesis, n)
        total = sum(hyp.values())
        if total == 0:
            return 0.0
        match = sum((hyp & ngrams(reference, n)).values())
        if match == 0:
            return 0.0
        log_p += math.log(match / total) / 4
    c, r = len(hypothesis), len(reference)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(log_p)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(hypothesis: Sequence[str], reference: Sequence[str]) -> float:
    """ROUGE-L F1 (Lin 2004): the longest common subsequence's precision and recall, harmonic mean."""
    if not hypothesis or not reference:
        return 0.0
    lcs = lcs_length(hypothesis, reference)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(hypothesis), lcs / len(reference)
    return 2 * p * r / (p + r)


def keyword_precision(keywords: Sequence[str], reference: str) -> float:
    """Share of the continuation's keywords that occur in the real news text (0 with no keywords)."""
    if not keywords:
        return 0.0
    return sum(k in reference for k in keywords) / len(keywords)


def paired_ranking(logliks: Sequence[Sequence[float]], truths: Sequence[int]) -> float | None:
    """How often a query whose right answer is option 1 gets higher log-odds of option 1 than a
    query whose right answer is option 0, over the item's (truth 1, truth 0) pairs; a tie counts
    half. None without both kinds of query, or for more than two options.

    On these evaluators option 1 is "hallucinated" (or "B", or "Yes" to HaluEval's "contains
    hallucination"), so this asks whether the model finds the hallucinated text more suspect than
    the real one, whatever its prior on the answer words. Accuracy by likelihood takes the argmax
    of each query alone, and a model whose prior favours one word scores exactly 0.5 there however
    well it ranks; this is the same comparison with that constant removed (per item, the AUC of the
    log-odds). A constant or a position-only judge scores 0.5."""
    if any(len(lp) != 2 for lp in logliks):
        return None
    margin = [lp[1] - lp[0] for lp in logliks]
    pos = [m for m, t in zip(margin, truths) if t == 1]
    neg = [m for m, t in zip(margin, truths) if t == 0]
    if not pos or not neg:
        return None
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


__all__ = ["bleu4", "keyword_precision", "lcs_length", "mean_se", "ngrams", "paired_ranking", "rouge_l", "tokenize"]

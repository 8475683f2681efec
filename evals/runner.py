"""Runs evaluators over items for one responder (a model or a scripted judge), chunk by chunk:
every query of a chunk goes to the responder in one call (a Ray LLMPool spreads it over its
actors), replies are parsed and scored, and each item's record is appended to the answer cache.

A failing call is retried; when it still fails, its items are asked one by one, and an item whose
call keeps failing is recorded as an error (counted apart, asked again on resume) — never scored
as an invalid answer, which is what the reference does with a swallowed exception."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from core.seeding import derive_seed
from evals.cache import AnswerCache
from evals.data import Item
from evals.evaluators import Evaluator, Generative, Query
from evals.metrics import paired_ranking

log = logging.getLogger("tailor.evals")


@dataclass
class RunStats:
    items: int = 0
    skipped: int = 0  # answered by an earlier run (resume)
    answered: int = 0
    errors: int = 0
    calls: int = 0
    seconds: float = 0.0
    messages: list[str] = field(default_factory=list)


def with_retries(fn: Callable, retries: int, backoff_s: float = 0.0):
    """fn(), tried 1 + retries times; the last exception propagates."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - any backend failure is retried, then reported
            if attempt == retries:
                raise
            log.warning("backend call failed (%s: %s); retry %d of %d", type(err).__name__, err, attempt + 1, retries)
            if backoff_s:
                time.sleep(backoff_s * 2 ** attempt)


def _ask(responder, method: str, jobs: list[tuple[Item, Query]], seeds: list[int], retries: int,
         backoff_s: float, stats: RunStats) -> tuple[list, dict[str, str]]:
    """responder.<method> over jobs: (results with None where an item failed, {item id: error})."""
    def call(js, ss):
        stats.calls += 1
        return getattr(responder, method)(js, ss)

    try:
        return with_retries(lambda: call(jobs, seeds), retries, backoff_s), {}
    except Exception:  # noqa: BLE001 - isolate the failing items below
        pass
    results: list = [None] * len(jobs)
    errors: dict[str, str] = {}
    by_item: dict[str, list[int]] = {}
    for i, (it, _) in enumerate(jobs):
        by_item.setdefault(it.id, []).append(i)
    for item_id, idx in by_item.items():
        try:
            part = with_retries(lambda: call([jobs[i] for i in idx], [seeds[i] for i in idx]), retries, backoff_s)
        except Exception as err:  # noqa: BLE001
            errors[item_id] = f"{type(err).__name__}: {err}"
            continue
        for i, r in zip(idx, part):
            results[i] = r
    return results, errors


def _pick_from_likelihood(scores: Sequence[float]) -> int:
    return max(range(len(scores)), key=lambda i: scores[i])


def run_chunk(evaluator: Evaluator, items: Sequence[Item], responder, seed: int, retries: int = 2,
              backoff_s: float = 0.0, stats: RunStats | None = None) -> list[dict]:
    """One record per item: replies, parsed picks and scores, by text and (with log-probs) by likelihood."""
    stats = stats or RunStats()
    replies: dict[str, dict[str, str]] = {it.id: {} for it in items}
    liks: dict[str, dict[str, list[float]]] = {it.id: {} for it in items}
    errors: dict[str, str] = {}
    use_lik = responder.likelihood and not isinstance(evaluator, Generative)
    for _stage in range(4):  # the generative evaluator asks twice (continue, then keywords)
        jobs = [(it, q) for it in items if it.id not in errors
                for q in evaluator.queries(it, replies[it.id]) if q.key not in replies[it.id]]
        if not jobs:
            break
        seeds = [derive_seed(seed, responder.name, evaluator.name, it.id, q.key) for it, q in jobs]
        if use_lik:  # each reply and its options' log-probs in one call (responder.answer)
            answers, errs = _ask(responder, "answer", jobs, seeds, retries, backoff_s, stats)
            texts = [None if a is None else a[0] for a in answers]
            for (it, q), a in zip(jobs, answers):
                if a is not None and a[1] is not None and q.choices:
                    liks[it.id][q.key] = a[1]
            use_lik = responder.likelihood  # False once the backend has said it has no log-probs
        else:
            texts, errs = _ask(responder, "generate", jobs, seeds, retries, backoff_s, stats)
        errors.update(errs)
        for (it, q), t in zip(jobs, texts):
            if t is not None:
                replies[it.id][q.key] = t
    records = []
    for it in items:
        base = {"item": it.id, "type": it.type, "model": responder.name, "evaluator": evaluator.name,
                "scripted": responder.scripted}
        if it.id in errors:
            records.append({**base, "status": "error", "error": errors[it.id]})
            stats.errors += 1
            continue
        queries = evaluator.queries(it, replies[it.id])
        rec = {**base, "status": "ok", "replies": replies[it.id]}
        if isinstance(evaluator, Generative):
            rec["text"] = evaluator.score_text(it, replies[it.id])
        else:
            picks = {q.key: evaluator.parse(q, replies[it.id][q.key]) for q in queries}
            rec["text"] = {"picks": picks, **evaluator.score(it, queries, picks)}
            if use_lik and all(q.key in liks[it.id] for q in queries):
                lpicks = {q.key: _pick_from_likelihood(liks[it.id][q.key]) for q in queries}
                rec["loglik"] = liks[it.id]
                rec["likelihood"] = {"picks": lpicks, **evaluator.score(it, queries, lpicks),
                                     "ranked": paired_ranking([liks[it.id][q.key] for q in queries],
                                                              [q.truth for q in queries])}
        records.append(rec)
        stats.answered += 1
    return records


def run_evaluator(evaluator: Evaluator, items: Sequence[Item], responder, cache: AnswerCache, dataset: str,
                  seed: int, chunk_items: int = 8, retries: int = 2, backoff_s: float = 0.0,
                  progress: Callable | None = None) -> RunStats:
    """Every applicable item not already in the cache, chunk by chunk; says how many it skipped."""
    stats = RunStats()
    todo = [it for it in items if evaluator.applies_to(it)]
    stats.items = len(todo)
    done = cache.done(responder.name, dataset, evaluator.name)
    pending = [it for it in todo if it.id not in done]
    stats.skipped = len(todo) - len(pending)
    if stats.skipped:
        msg = (f"{responder.name} / {dataset} / {evaluator.name}: {stats.skipped} of {len(todo)} items already "
               f"answered in {cache.path(responder.name, dataset, evaluator.name)}, skipped")
        log.info(msg)
        stats.messages.append(msg)
    chunks = [pending[i:i + chunk_items] for i in range(0, len(pending), chunk_items)]
    start = time.perf_counter()
    for chunk in (progress(chunks, desc=f"{responder.name} {dataset} {evaluator.name}") if progress else chunks):
        cache.append(responder.name, dataset, evaluator.name,
                     run_chunk(evaluator, chunk, responder, seed, retries, backoff_s, stats))
    stats.seconds = time.perf_counter() - start
    return stats


__all__ = ["RunStats", "run_chunk", "run_evaluator", "with_retries"]

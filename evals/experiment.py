"""The halueval job's steps: load the datasets, evaluate every model (or scripted judge) with every
evaluator its datasets name, then write the leaderboard, the plot, the raw answers and summary.md."""

from __future__ import annotations

import json
import logging
import time

from core.runs import RunDir, atomic_write, progress
from evals.cache import AnswerCache
from evals.config import HaluEvalJobConfig, ModelEntry
from evals.data import Item, load_items
from evals.evaluators import build_evaluator
from evals.judges import LLMResponder, ScriptedJudge
from evals.leaderboard import aggregate, plot, tables
from evals.runner import run_evaluator

log = logging.getLogger("tailor.evals")


def load_datasets(cfg: HaluEvalJobConfig) -> dict[str, list[Item]]:
    return {d.name: load_items(d.name, d.items, cfg.seed, key=f"datasets[{i}].name")
            for i, d in enumerate(cfg.datasets)}


def build_responder(cfg: HaluEvalJobConfig, i: int, m: ModelEntry):
    if m.judge != "llm":
        return ScriptedJudge(m.judge, cfg.seed)
    from core.llm import build_backend

    llm = m.llm
    if llm.pool.actors > 0 and not start_ray(cfg.ray_num_cpus):  # only when a model has work left
        import dataclasses

        # said in summary.md: the numbers stand, the spread over actors did not happen
        FALLBACKS.append(f"{m.name}: Ray did not start on this machine (its raylet missed Ray's 30 s start-up "
                         f"window {RAY_ATTEMPTS} times), so the model ran in the driver process, not on "
                         f"{llm.pool.actors} actors")
        log.warning(FALLBACKS[-1])
        llm = dataclasses.replace(llm, pool=dataclasses.replace(llm.pool, actors=0))
    backend = build_backend(llm, key=f"models[{i}].llm")
    if hasattr(backend, "check"):
        backend.check()  # a pool: every actor has loaded its model
    s = cfg.sampling
    r = LLMResponder(m.name, backend, m.prompt_format, s.system_message if m.prompt_format == "chat" else "",
                     s.temperature, s.top_p, s.top_k, likelihood=m.likelihood)
    return r


RAY_ATTEMPTS = 6
FALLBACKS: list[str] = []


def start_ray(num_cpus: int | None, attempts: int = RAY_ATTEMPTS) -> bool:
    """core.ray.init_ray, tried again when the raylet misses Ray's fixed 30 s start-up window (seen
    here when the machine's load average is many times its core count)."""
    import os

    import ray

    from core.ray import init_ray

    # Ray runs its workers at nice 15 unless told otherwise: on a machine shared with other work, the
    # pool's actors would then get a sliver of the CPU that the same model in a plain process gets
    os.environ.setdefault("RAY_worker_niceness", "0")

    for _ in range(attempts):
        try:
            init_ray(num_cpus=num_cpus)
            return True
        except Exception as err:  # noqa: BLE001
            if "timed out during startup" not in str(err):
                raise
            log.warning("Ray did not start in time (%s); trying again", err)
            ray.shutdown()
    return False


def pending(cache: AnswerCache, model: str, dataset: str, evaluator: str, items: list[Item]) -> int:
    ev = build_evaluator(evaluator)
    done = cache.done(model, dataset, evaluator)
    return sum(ev.applies_to(it) and it.id not in done for it in items)


def minilm_similarity():
    """Cosine of all-MiniLM-L6-v2's mean-pooled embeddings: the offline stand-in for the text2vec
    similarity UHGEval calls "BertScore". MiniLM was trained on English; on Chinese it sees single
    characters, so read it as a coarse overlap signal there."""
    from core.encoders import Embedder

    emb = Embedder("minilm", max_length=256, device="cpu")

    def sim(a: str, b: str) -> float:
        e = emb.embed([a, b])
        return float((e[0] * e[1]).sum())

    return sim


def evaluate(cfg: HaluEvalJobConfig, run: RunDir, data: dict[str, list[Item]] | None = None) -> dict:
    """Every model on every dataset's evaluators; answers go to run/answers (resume skips them)."""
    data = data if data is not None else load_datasets(cfg)
    cache = AnswerCache(run.file("answers"))
    needs_sim = cfg.similarity == "minilm" and any("generative" in d.evaluators for d in cfg.datasets)
    sim = minilm_similarity() if needs_sim else None
    timings, messages = [], []
    for i, m in enumerate(cfg.models):
        left = {(d.name, e): pending(cache, m.name, d.name, e, data[d.name]) for d in cfg.datasets for e in d.evaluators}
        if not any(left.values()):
            for (ds, e), _ in left.items():
                n = sum(build_evaluator(e).applies_to(it) for it in data[ds])
                msg = f"{m.name} / {ds} / {e}: all {n} items already answered, skipped"
                log.info(msg)
                messages.append(msg)
                rec = {"model": m.name, "dataset": ds, "evaluator": e, "items": n, "skipped": n, "answered": 0,
                       "errors": 0, "calls": 0, "seconds": 0.0, "load_seconds": 0.0}
                run.log_metrics(rec)
                timings.append(rec)
            continue
        start = time.perf_counter()
        responder = build_responder(cfg, i, m)
        load_s = time.perf_counter() - start
        try:
            for d in cfg.datasets:
                for e in d.evaluators:
                    ev = build_evaluator(e, keywords=cfg.keywords, similarity=sim) if e == "generative" \
                        else build_evaluator(e)
                    stats = run_evaluator(ev, data[d.name], responder, cache, d.name, cfg.seed, cfg.chunk_items,
                                          cfg.retries, cfg.backoff_s, progress=progress)
                    messages += stats.messages
                    rec = {"model": m.name, "dataset": d.name, "evaluator": e, "items": stats.items,
                           "skipped": stats.skipped, "answered": stats.answered, "errors": stats.errors,
                           "calls": stats.calls, "seconds": stats.seconds, "load_seconds": load_s}
                    run.log_metrics(rec)
                    timings.append(rec)
        finally:
            responder.close()
    messages += FALLBACKS
    rows = aggregate(cache.all_records())
    write_outputs(cfg, run, cache, rows, timings, messages)
    return {"rows": rows, "timings": timings, "messages": messages}


def write_outputs(cfg: HaluEvalJobConfig, run: RunDir, cache: AnswerCache, rows: list[dict], timings: list[dict],
                  messages: list[str]) -> str:
    records = cache.all_records()
    atomic_write(run.file("answers.jsonl"), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    run.write_json("leaderboard.json", rows)
    has_plot = any(r["evaluator"] != "generative" for r in rows)
    if has_plot:
        plot(rows, run.file("leaderboard.png"))
    lines = ["# Hallucination evaluation (UHGEval evaluators, HaluEval)", "",
             f"Models: {', '.join(m.name + (' (scripted test instrument)' if m.judge != 'llm' else '') for m in cfg.models)}.",
             "Datasets: " + ", ".join(f"{d.name} ({d.items or 'all'} items: {', '.join(d.evaluators)})"
                                       for d in cfg.datasets) + ".", "",
             "`by text`: the reply parsed with the reference's rules (a reply that does not parse is invalid); "
             "`by likelihood`: the option with the highest log-probability (always valid). "
             "Errors are backend failures after retries, never counted as invalid answers.", "",
             tables(rows), ""]
    if messages:
        lines += ["Notes (resume, Ray):", *[f"- {m}" for m in messages], ""]
    secs = {}
    for t in timings:
        secs[t["model"]] = secs.get(t["model"], 0.0) + t["seconds"]
    lines += ["Seconds answering per model: " + ", ".join(f"{k} {v:.0f}" for k, v in secs.items()) + ".", "",
              "Raw answers: `answers.jsonl` (and the cache under `answers/`); table: `leaderboard.json`."]
    if has_plot:
        lines += ["", "![leaderboard](leaderboard.png)"]
    text = "\n".join(lines) + "\n"
    run.write_summary(text)
    return text


__all__ = ["build_responder", "evaluate", "load_datasets", "minilm_similarity", "write_outputs"]

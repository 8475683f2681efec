"""ChatIE against the single-turn prompt on the same LLM (and stage I by likelihood against stage I
parsed from text), with spaCy's supervised NER for reference, on WNUT-17, FewRel and WikiEvents.

Runs the chatie job (configs/chatie/laptop.yaml unless --config) as a fresh process and writes the
`chatie` section of BENCHMARKS.md from its results.json, with each target met or missed.

    python -m bench.chatie
    python -m bench.chatie --set datasets[0].limit=50 ...          # a subset: say so with --note
    python -m bench.chatie --from-run runs/bench-chatie/<stamp>/chatie/<run> [more runs] --note "..."
    python -m bench.chatie --config configs/chatie/wnut17.yaml --holdout-from 200   # also the inputs past 200
    (several runs of the same config, e.g. datasets run side by side, make one section)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.report import BENCHMARKS, run_job, run_load_sentence, section_for, write_section
from core.config import load
from core.runs import markdown_table


class R:  # a results.json row with attribute access, as ie.report expects
    def __init__(self, d: dict):
        self.__dict__.update(d)


def _f1(rows, dataset, method, key="f1"):
    r = next((r for r in rows if r.dataset == dataset and r.method == method), None)
    return None if r is None else r.metrics.get(key)


def _rate(r) -> float | None:
    s = r.stats
    fresh = s.get("inputs", 0) - s.get("inputs_reused", 0)
    return fresh / (s["seconds"] / 60) if s.get("seconds") and fresh else None


def section(rows: list[R], cfg, minutes: float | None, note: str, png: str | None, load_text: str = "",
            intervals: dict[tuple[str, str], tuple[float, float, float]] | None = None) -> str:
    """`intervals`: per (dataset, ChatIE method), its F1 minus single turn's with its 95% paired
    bootstrap interval (paired_intervals); a target is met only when the interval lies above 0."""
    from ie.report import HEADER, result_rows

    tasks = {r.dataset: r.task for r in rows}
    top = f", stage I by likelihood limited to its top {cfg.chat.stage1_top_k}" if cfg.chat.stage1_top_k else ""
    lines = [f"## chatie: ChatIE vs single-turn prompting ({Path(getattr(cfg, '_path', 'laptop')).stem} config{top})", "",
             f"LLM: {cfg.llm.backend} {cfg.llm.model_name()}, greedy, at most {cfg.chat.max_new_tokens} new tokens "
             f"per answer. {load_text}".rstrip(), ""]
    if note:
        lines += [f"What ran: {note}", ""]
    first = {}
    for r in rows:
        first.setdefault(r.dataset, r)
    sizes = ", ".join(f"{d} {r.stats.get('inputs', 0)} inputs" for d, r in first.items())
    lines += [f"Inputs scored: {sizes}." + (f" Wall time {minutes:.0f} min." if minutes else ""), "",
              markdown_table(HEADER, result_rows(rows)), ""]
    if png:
        lines += [f"![F1 per dataset and method]({png})", ""]
    # speed as a ratio against the single-turn prompt on the same data in the same run
    ratios = []
    for d in tasks:
        base = next((r for r in rows if r.dataset == d and r.method == "single_turn"), None)
        for r in rows:
            if r.dataset == d and r.method.startswith("chatie") and base is not None and _rate(r) and _rate(base):
                ratios.append(f"{d} {r.method} {_rate(r) / _rate(base):.2f}x")
    if ratios:
        lines += ["Inputs per minute relative to single turn (same run): " + "; ".join(ratios) + ".", ""]
    lines += ["Targets (the paper's direction, same model):", ""]
    configured = {d.task for d in cfg.datasets}
    for task in ("ner", "re"):
        if task not in tasks.values():
            why = ("no {T} dataset finished in this run" if task in configured else
                   "this config has no {T} dataset; the laptop config's `chatie` section measures it")
            lines.append(f"- ChatIE beats single-turn F1 on {task.upper()}: **not measured** "
                         f"({why.format(T=task.upper())})")

    def pairs(d):  # the ChatIE methods that ran beside single turn on dataset d
        if _f1(rows, d, "single_turn") is None:
            return []
        return [m for m in ("chatie", "chatie_loglik") if _f1(rows, d, m) is not None]

    paired = {task for d, task in tasks.items() if pairs(d)}
    for d, task in tasks.items():
        if task not in ("re", "ner"):
            continue
        if not pairs(d) and task in paired:
            continue  # a side run on the same task (e.g. a likelihood subset): its target is judged elsewhere
        if not pairs(d):
            lines.append(f"- ChatIE beats single-turn F1 on {task.upper()} ({d}): **not measured** (no finished "
                         f"ChatIE and single-turn pair in this run)")
            continue
        lines += [_target_line(rows, d, task, m, intervals) for m in pairs(d)]
    for d, task in tasks.items():
        if task == "ee":
            lines += [_events_line(rows, d, m, intervals) for m in pairs(d)]
    for d in tasks:
        # a dataset named '<name>-loglik' holds the same inputs as <name>, run with chatie_loglik only;
        # otherwise both ways of stage I ran on the dataset itself
        base = d.removesuffix("-loglik")
        c, lk = _f1(rows, base, "chatie"), _f1(rows, d, "chatie_loglik")
        if c is not None and lk is not None:
            lines.append(f"- stage I by likelihood vs parsed from text ({base}): F1 {lk:.3f} vs {c:.3f}")
    return "\n".join(lines) + "\n"


def _verdict(lo: float, chatie: float, single: float) -> str:
    """A target is met only when the paired interval lies above 0."""
    return "met" if lo > 0 else ("missed" if chatie <= single else "not shown (the difference is within the noise)")


def _target_line(rows, d: str, task: str, method: str, intervals) -> str:
    """One target: `method` (ChatIE, with stage I parsed or by likelihood) against single turn on
    dataset d, met only when the paired interval of the difference lies above 0."""
    c, s = _f1(rows, d, method), _f1(rows, d, "single_turn")
    ci = (intervals or {}).get((d, method))
    if ci is None:
        verdict, why = ("met" if c > s else "missed"), ""
    else:
        diff, lo, hi = ci
        verdict = _verdict(lo, c, s)
        why = f" (difference {diff:+.3f}, 95% paired bootstrap interval over inputs [{lo:+.3f}, {hi:+.3f}])"
    raw = [_f1(rows, d, m, "ungrounded_f1") for m in (method, "single_turn")]
    if None not in raw:  # the target is judged on the job's output, grounded; the paper scored the answers
        why += f" (as answered, before grounding: {raw[0]:.3f} vs {raw[1]:.3f})"
    row = next(r for r in rows if r.dataset == d and r.method == method)
    k = row.stats.get("stage1_top_k")
    name = "ChatIE" if method == "chatie" else "ChatIE with stage I by likelihood" + (f" (top {k})" if k else "")
    return f"- {name} beats single-turn F1 on {task.upper()} ({d}): {c:.3f} vs {s:.3f}{why}: **{verdict}**"


def _events_line(rows, d: str, method: str, intervals) -> str:
    """ChatIE against single turn on events, in the target's terms (the issue sets no target for EE):
    argument F1 with its paired interval, and event-type F1."""
    c, s = _f1(rows, d, method), _f1(rows, d, "single_turn")
    ci = (intervals or {}).get((d, method))
    why = "" if ci is None else f" (difference {ci[0]:+.3f}, 95% paired bootstrap interval over inputs [{ci[1]:+.3f}, {ci[2]:+.3f}])"
    tc, ts = _f1(rows, d, method, "type_f1"), _f1(rows, d, "single_turn", "type_f1")
    types = "" if None in (tc, ts) else f"; event-type F1 {tc:.3f} vs {ts:.3f}"
    name = "ChatIE" if method == "chatie" else "ChatIE with stage I by likelihood"
    ahead = "ahead" if ci and ci[1] > 0 else "behind" if ci and ci[2] < 0 else "level within the noise" if ci else (
        "ahead" if c > s else "not ahead")
    ahead += " on arguments"
    return f"- {name} against single turn on EE ({d}), not a target: argument F1 {c:.3f} vs {s:.3f}{why}{types}: **{ahead}**"


GOLD_KEYS = {"ner": "entities", "re": "triples", "ee": "events"}


def _predictions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _sets(task: str, record: dict) -> tuple[set, set]:
    """A predictions record's (predicted, gold) tuple sets, as ie.score compares them."""
    from ie.score import gold_tuples, pred_tuples

    return (pred_tuples(task, [tuple(p) for p in record["pred"]]),
            gold_tuples(task, record.get(GOLD_KEYS[task]) or []))


def dialogue_line(dataset: str, task: str, records: list[dict]) -> str:
    """Where a ChatIE run lost its recall, from its dialogues: stage I's statuses (and how many of its
    empty or unparsed answers were on inputs with gold), and stage II questions answered with none."""
    from collections import Counter

    first = Counter(r["turns"][0]["status"] for r in records if r["turns"])
    missed = sum(1 for r in records if r["turns"] and r["turns"][0]["status"] in ("none", "unparsed")
                 and r.get(GOLD_KEYS[task]))
    second = [t["status"] for r in records for t in r["turns"][1:]]
    return (f"{dataset}: stage I answers {len(records)}: " + ", ".join(f"{k} {v}" for k, v in sorted(first.items()))
            + f" ({missed} of the none/unparsed on inputs with gold); stage II questions {len(second)}, "
            f"{second.count('none')} answered none; inputs with stage II asked "
            f"{sum(1 for r in records if len(r['turns']) > 1)}.")


def errors_line(dataset: str, task: str, method: str, records: list[dict]) -> str:
    """Where a method lost its precision: its predictions, how many were right, and how many wrong ones
    fell on inputs with no gold at all; for ChatIE on relations, how often stage II, asked for the
    gold relation's pairs, answered none."""
    n = right = on_empty = 0
    for r in records:
        pred, gold = _sets(task, r)
        n, right = n + len(pred), right + len(pred & gold)
        on_empty += 0 if gold else len(pred)
    line = (f"{method}, {dataset}: {n} predictions, {right} right, {n - right} wrong ({on_empty} of them on "
            "inputs with no gold)")
    if task == "re" and method.startswith("chatie"):
        asked = [t for r in records for g in {x["relation"] for x in r.get("triples") or []}
                 for t in r["turns"] if t["stage"] == f"stage2:{g}"]
        line += (f"; stage II was asked for the gold relation on {len(asked)} inputs and answered none on "
                 f"{sum(t['status'] == 'none' for t in asked)}")
    if task == "ee":
        line += "; " + event_types_text(records)
    return line + "."


def event_types_text(records: list[dict]) -> str:
    """Event detection: the gold (input, event type) pairs a method found, and the type it named on
    the most inputs without that type in the gold."""
    from collections import Counter

    found = gold = 0
    named, wrong = Counter(), Counter()
    for r in records:
        pred, truth = {p[0] for p in r["pred"]}, {e["type"] for e in r.get("events") or []}
        found, gold = found + len(pred & truth), gold + len(truth)
        named.update(pred)
        wrong.update(pred - truth)
    text = f"event types: {found} of the {gold} gold (input, type) pairs found"
    if wrong:
        t, n = wrong.most_common(1)[0]
        text += f", the most often wrong type {t} (named on {named[t]} inputs, {named[t] - n} of them right)"
    return text


def prediction_files(runs: list[Path]) -> dict[str, Path]:
    """The runs' predictions files by '<dataset>.<method>'."""
    return {f.name.removesuffix(".jsonl"): f for run in runs for f in sorted((run / "predictions").glob("*.jsonl"))}


def subset_f1(task: str, records: list[dict], ids: set[str]):
    """micro P/R/F1 of a method's predictions restricted to the inputs `ids` (a side run's subset)."""
    from ie.score import micro

    return micro(_sets(task, r) for r in records if r["id"] in ids)


def paired_intervals(runs: list[Path], tasks: dict[str, str]) -> dict[tuple[str, str], tuple[float, float, float]]:
    """Per (dataset, ChatIE method) with a single-turn predictions file beside it: the method's F1
    minus single turn's, with its 95% interval from resampling the inputs both scored
    (ie.score.paired_bootstrap_f1)."""
    from ie.score import paired_bootstrap_f1

    files = prediction_files(runs)
    out = {}
    for d, task in tasks.items():
        for method in ("chatie", "chatie_loglik"):
            if f"{d}.{method}" not in files or f"{d}.single_turn" not in files:
                continue
            by = [{r["id"]: r for r in _predictions(files[f"{d}.{m}"])} for m in (method, "single_turn")]
            ids = sorted(set(by[0]) & set(by[1]))
            if ids:
                out[d, method] = paired_bootstrap_f1([_sets(task, by[0][i]) for i in ids],
                                                     [_sets(task, by[1][i]) for i in ids])
    return out


def holdout_lines(runs: list[Path], tasks: dict[str, str], start: int) -> list[str]:
    """Each ChatIE method against single turn on NER and RE again, on the inputs from position `start`
    on (in the order the run wrote them, the dataset's order): a confirmation run on a larger slice
    judges its targets on what an earlier run had not seen, as well as on everything."""
    from ie.score import paired_bootstrap_f1

    files = prediction_files(runs)
    lines = []
    for d, task in tasks.items():
        if task not in ("ner", "re") or f"{d}.single_turn" not in files:
            continue
        base = {r["id"]: r for r in _predictions(files[f"{d}.single_turn"])}
        for method in ("chatie", "chatie_loglik"):
            if f"{d}.{method}" not in files:
                continue
            records = _predictions(files[f"{d}.{method}"])
            ids = [r["id"] for r in records[start:] if r["id"] in base]
            if not ids:
                lines.append(f"- {method} on {d} from input {start + 1} on: no inputs")
                continue
            by = {r["id"]: r for r in records}
            a, b = [_sets(task, by[i]) for i in ids], [_sets(task, base[i]) for i in ids]
            diff, lo, hi = paired_bootstrap_f1(a, b)
            fa, fb = (subset_f1(task, recs, set(ids)).f1 for recs in (records, list(base.values())))
            verdict = _verdict(lo, fa, fb)
            lines.append(f"- {method} against single turn on {task.upper()} ({d}), inputs {start + 1} to "
                         f"{start + len(ids)} only ({len(ids)}, not scored by the earlier run): F1 {fa:.3f} vs "
                         f"{fb:.3f} (difference {diff:+.3f}, 95% paired bootstrap interval over inputs "
                         f"[{lo:+.3f}, {hi:+.3f}]): **{verdict}**")
    return lines


def diagnostics(runs: list[Path], tasks: dict[str, str]) -> list[str]:
    """Lines for the section: each ChatIE dialogue summary, and for a dataset named '<name>-<subset>'
    the single-turn F1 of <name> on the same inputs."""
    files = prediction_files(runs)
    lines = []
    for key, f in files.items():
        d, method = key.rsplit(".", 1)
        if method in ("chatie", "chatie_loglik") and d in tasks:
            lines.append(f"- {method}, " + dialogue_line(d, tasks[d], _predictions(f)))
    for key, f in files.items():
        d, method = key.rsplit(".", 1)
        if method != "spacy" and d in tasks:
            lines.append("- " + errors_line(d, tasks[d], method, _predictions(f)))
    for d, task in tasks.items():
        base = next((b for b in tasks if d.startswith(b + "-")), None)
        if base is None or f"{base}.single_turn" not in files or f"{d}.chatie" not in files:
            continue
        ids = {r["id"] for r in _predictions(files[f"{d}.chatie"])}
        m = subset_f1(task, _predictions(files[f"{base}.single_turn"]), ids)
        lines.append(f"- single turn on the {len(ids)} inputs of {d} (from {base}'s run): F1 {m.f1:.3f} "
                     f"(P {m.precision:.3f}, R {m.recall:.3f})")
    return lines


def section_name(cfg, config: str) -> str:
    """The config's section, and its own for a run whose likelihood stage I keeps only its top k
    types, so that it sits beside the run that keeps every type scored Yes instead of replacing it."""
    k = cfg.chat.stage1_top_k
    return section_for("chatie", config) + (f"_stage1_top{k}" if k and cfg.uses("chatie_loglik") else "")


def main(argv: list[str] | None = None) -> int:
    from ie.config import ChatIEJobConfig

    ap = argparse.ArgumentParser(prog="python -m bench.chatie", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/chatie/laptop.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default="runs/bench-chatie")
    ap.add_argument("--from-run", nargs="+", help="write the section from finished run directories instead of "
                                                  "running (their results.json rows are joined)")
    ap.add_argument("--note", default="", help="what ran, when it is not the config's full size")
    ap.add_argument("--holdout-from", type=int, default=None, metavar="N",
                    help="also judge each NER and RE target on the inputs from the N-th on (counting from 0): "
                         "those an earlier run on the first N had not scored")
    args = ap.parse_args(argv)
    if args.from_run:
        runs, minutes = [Path(r) for r in args.from_run], None
    else:
        run, minutes = run_job("chatie", args.config, args.set, args.out)
        runs = [run]
    cfg = load(ChatIEJobConfig, runs[0] / "config.yaml")
    cfg._path = args.config
    rows = [R(d) for run in runs for d in json.loads((run / "results.json").read_text())]
    png = f"bench_{section_name(cfg, args.config)}.png"  # bench_chatie.png for the laptop config
    from ie.report import plot_f1

    plot_f1(BENCHMARKS.parent / png, rows)
    import sys

    # the note is printed under "What ran": the stamped command need not repeat it
    argv_ = list(sys.argv[1:] if argv is None else argv)
    if "--note" in argv_:
        argv_[argv_.index("--note") + 1] = "'(see What ran)'"
    command = " ".join(["python -m bench.chatie", *argv_])
    tasks = {r.dataset: r.task for r in rows}
    body = section(rows, cfg, minutes, args.note, png, run_load_sentence(runs), paired_intervals(runs, tasks))
    if args.holdout_from is not None:
        held = holdout_lines(runs, tasks, args.holdout_from)
        body = body.rstrip("\n") + "\n" + "\n".join(held) + "\n"
    extra = diagnostics(runs, tasks)
    if extra:
        body += "\nFrom the runs' dialogues (`predictions/*.jsonl`):\n\n" + "\n".join(extra) + "\n"
    write_section(section_name(cfg, args.config), body, command=command)
    for run in runs:
        if (run / "summary.md").is_file():
            print((run / "summary.md").read_text().split("![")[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

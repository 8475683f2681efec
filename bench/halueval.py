"""Does compression change the hallucination rate? Runs `ray_jobs.halueval` with
configs/halueval/laptop.yaml (SmolLM2-135M-Instruct, its Basel-compressed copy at keep 0.5, the
strongest offline instruct model through llama.cpp when its server binary exists, and the scripted
sanity panel) and writes the `halueval` section of BENCHMARKS.md: the leaderboard, the sanity
panel's check, and the paired difference compressed minus dense per evaluator.

The compressed models are those named `<dense>-basel-<keep>`; each is paired with the config's
first other model that an LLM judges (configs/halueval/qwen_compressed.yaml: Qwen2.5-Coder-1.5B
on the hf backend, dense and Basel-compressed, writes the `halueval_qwen_compressed` section).

    python -m bench.halueval --config configs/halueval/laptop.yaml --items 30
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import yaml

from bench.report import run_job, run_load_sentence, section_for, write_section
from core.runs import markdown_table
from evals.leaderboard import aggregate, format_score
from evals.metrics import mean_se

# one slot per server: an item's queries go one after another and reuse the shared prefix; two
# slots prefill both at once and were 1.4-1.6x slower on 2026-12-05 (docs/halueval.md)
QWEN = {"name": "qwen2.5-coder-1.5b", "llm": {"backend": "llamacpp", "llamacpp": {
    "model": "qwen2.5-coder-1.5b", "threads": 1, "parallel": 1, "ctx": 4096},
    "pool": {"actors": 2, "batch_size": 2, "num_cpus": 1}}}


def llamacpp_available() -> str | None:
    """Why the llama.cpp arm cannot run, or None when it can."""
    try:
        from core.llm.llama_server import server_binary
        from core.models import gguf_path

        server_binary(None)
        gguf_path("qwen2.5-coder-1.5b")
    except Exception as err:  # noqa: BLE001 - the reason goes into the report
        return str(err)
    return None


def compression_pairs(cfg: dict) -> tuple[str | None, list[str]]:
    """(the dense model, the compressed ones): models named `...-basel-<keep>` are compressed; the
    dense one is the first other model an LLM judges."""
    llms = [m["name"] for m in cfg["models"] if m.get("judge", "llm") == "llm"]
    compressed = [n for n in llms if "-basel-" in n]
    dense = next((n for n in llms if n not in compressed), None)
    return dense, compressed


def paired_difference(records: list[dict], evaluator: str, dataset: str, way: str, dense: str, compressed: str,
                      key: str = "score") -> tuple[float, float, int]:
    """Mean over items both models answered validly of (compressed - dense) `key` ("score", or
    "ranked" by likelihood), its SE, n."""
    by = {}
    for r in records:
        if r["evaluator"] == evaluator and r["dataset"] == dataset and r.get("status") == "ok" and r.get(way):
            by.setdefault(r["model"], {})[r["item"]] = r[way].get(key)
    a, b = by.get(dense, {}), by.get(compressed, {})
    diffs = [b[k] - a[k] for k in a if k in b and a[k] is not None and b[k] is not None]
    m, se = mean_se(diffs)
    return m, se, len(diffs)


def length_split(records: list[dict], cfg: dict) -> list[list]:
    """Per dataset, evaluator and model, the ranked score split by whether the hallucinated
    candidate (HaluEval's answer, UHGEval's continuation) is the longer of the two: a judge that
    only reads length ranks 1.0 where it is and 0.0 where it is not, so the split shows how much of
    a model's ranking length explains."""
    from evals.data import load_items
    from evals.evaluators import HaluEvalJudge

    rows = []
    for i, d in enumerate(cfg["datasets"]):
        items = {it.id: it for it in load_items(d["name"], d.get("items") or None, cfg.get("seed", 0),
                                                key=f"datasets[{i}].name")}
        by_key: dict[tuple[str, str], dict[bool, list[float]]] = {}
        for r in records:
            it = items.get(r["item"])
            if r["dataset"] != d["name"] or it is None or r.get("status") != "ok" \
                    or (r.get("likelihood") or {}).get("ranked") is None:
                continue
            if it.schema == "uhgeval":
                hallucinated, real = it.fields["hallucinatedContinuation"], it.fields["realContinuation"]
            else:
                hallucinated, real = HaluEvalJudge.answers(it)
            split = by_key.setdefault((r["evaluator"], r["model"]), {True: [], False: []})
            split[len(hallucinated) > len(real)].append(r["likelihood"]["ranked"])
        for (evaluator, model), split in sorted(by_key.items()):
            n_long, n_other = len(split[True]), len(split[False])
            rows.append([d["name"], evaluator, model, f"{n_long} of {n_long + n_other}",
                         f"{mean_se(split[True])[0]:.3f}" if n_long else "-",
                         f"{mean_se(split[False])[0]:.3f}" if n_other else "-"])
    return rows


def section_name(cfg: dict, config: str) -> str:
    """The BENCHMARKS.md section of a run with config `cfg`: a run of only some of `config`'s
    datasets (--datasets, or a resumed or finished run of one) gets its own, so the full run's stays."""
    ran = sorted(d["name"] for d in cfg["datasets"])
    full = sorted(d["name"] for d in yaml.safe_load(Path(config).read_text())["datasets"])
    return section_for("halueval", config) + ("".join(f"_{x}" for x in ran) if ran != full else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/halueval/laptop.yaml")
    ap.add_argument("--items", type=int, default=None, help="UHGEval items (default: the config's)")
    ap.add_argument("--qa-items", type=int, default=None, help="HaluEval items (default: --items)")
    ap.add_argument("--datasets", default=None,
                    help="comma-separated: run only these of the config's datasets (e.g. uhgeval); the section "
                         "is then halueval_<datasets>, so the full run's section stays")
    ap.add_argument("--skip-llamacpp", action="store_true")
    ap.add_argument("--out", default="runs/bench-halueval")
    ap.add_argument("--from-run", metavar="RUN_DIR",
                    help="write the section from a finished run (e.g. one resumed with an extra model's answers "
                         "copied into answers/), without running anything")
    ap.add_argument("--resume", metavar="RUN_DIR",
                    help="continue an interrupted run of this benchmark (its saved config; answered items are "
                         "skipped), then write the section")
    ap.add_argument("--note", default="", help="a sentence added to the section (what ran, what shared the machine)")
    args = ap.parse_args(argv)
    if args.from_run:
        run = Path(args.from_run)
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
        loads = {m["model"]: m.get("load_seconds", 0.0) for m in metrics if m["answered"]}
        minutes = (sum(m["seconds"] for m in metrics) + sum(loads.values())) / 60  # answering + model loads
        answered = (run / "answers").iterdir() if (run / "answers").is_dir() else []
        why_not = None if _has_qwen(p.name for p in answered) else "the run has no answers from it"
        return write_report(args, cfg, run, minutes, why_not)
    if args.resume:
        run = Path(args.resume)
        if not (run / "config.yaml").is_file():
            ap.error(f"--resume: {run} is not a run directory (no config.yaml in it)")
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        _, minutes = run_job("halueval", "", [], args.out, resume=str(run))
        why_not = None if _has_qwen(m["name"] for m in cfg["models"]) else "not in the run's config"
        return write_report(args, cfg, run, minutes, why_not)
    cfg = yaml.safe_load(Path(args.config).read_text())
    if args.datasets:
        names = [x for x in args.datasets.split(",") if x]
        known = [d["name"] for d in cfg["datasets"]]
        unknown = [x for x in names if x not in known]
        if unknown:
            ap.error(f"--datasets: {', '.join(unknown)} not in {args.config}; allowed: {', '.join(known)}")
        cfg["datasets"] = [d for d in cfg["datasets"] if d["name"] in names]
    for d in cfg["datasets"]:
        n = (args.qa_items or args.items) if d["name"].startswith("halueval") else args.items
        if n:
            d["items"] = n
    if _has_qwen(m["name"] for m in cfg["models"] if m["name"] != QWEN["name"]):
        why_not = None  # the config brings its own Qwen (qwen_compressed.yaml: on the hf backend)
    else:
        why_not = "skipped (--skip-llamacpp)" if args.skip_llamacpp else llamacpp_available()
        has = any(m["name"] == QWEN["name"] for m in cfg["models"])
        if why_not is None and not has:
            cfg["models"].append(QWEN)
        elif why_not is not None:
            cfg["models"] = [m for m in cfg["models"] if m["name"] != QWEN["name"]]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    used = Path(args.out) / "config.yaml"
    used.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    run, minutes = run_job("halueval", str(used), [], args.out)
    return write_report(args, cfg, run, minutes, why_not)


def _has_qwen(names) -> bool:
    return any(n.startswith(QWEN["name"]) for n in names)


def write_report(args, cfg: dict, run: Path, minutes: float, why_not: str | None) -> int:
    from evals.cache import AnswerCache

    from evals.leaderboard import tables as leaderboard_tables

    # from the answer cache, so that a run stopped part-way (the deadline) reports what it answered
    records = AnswerCache(run / "answers").all_records()
    rows = aggregate(records)
    tables = leaderboard_tables(rows).split("Accuracy at telling", 1)[1]
    checks = []
    for r in rows:
        if r["model"] == "oracle":
            checks.append(f"- oracle, {r['dataset']} {r['evaluator']} by {r['by']}: {r['score']:.3f} -> "
                          f"{'met' if r['score'] == 1.0 else 'MISSED'} (target: 1.0)")
        elif r["model"] == "constant" and r["evaluator"] != "generative":
            checks.append(f"- constant, {r['dataset']} {r['evaluator']} by {r['by']}: {r['score']:.3f} -> "
                          f"{'met' if r['score'] == 0.5 else 'MISSED'} (target: 0.5)")
        if r["model"] in ("oracle", "constant") and "ranked" in r:
            want = 1.0 if r["model"] == "oracle" else 0.5
            checks.append(f"- {r['model']}, {r['dataset']} {r['evaluator']} ranked by likelihood: {r['ranked']:.3f} -> "
                          f"{'met' if r['ranked'] == want else 'MISSED'} (target: {want})")
        if r["model"] == "random" and r["evaluator"] != "generative" and r["by"] == "text":
            ok = abs(r["score"] - 0.5) <= 2 * r["se"]
            checks.append(f"- random, {r['dataset']} {r['evaluator']}: {r['score']:.3f} ± {r['se']:.3f} -> "
                          f"{'met' if ok else 'MISSED'} (target: 0.5 within 2 SE)")
    dense, compressed = compression_pairs(cfg)
    diff_rows = []
    for name in compressed:
        for r in rows:
            if r["model"] != dense or r["evaluator"] == "generative":
                continue
            m, se, n = paired_difference(records, r["evaluator"], r["dataset"], r["by"], dense, name)
            comp = next((x for x in rows if x["model"] == name and x["evaluator"] == r["evaluator"]
                         and x["dataset"] == r["dataset"] and x["by"] == r["by"]), None)
            diff_rows.append([name, r["dataset"], r["evaluator"], r["by"],
                              f"{r['score']:.3f} ({r['invalid_share']:.2f})",
                              "-" if comp is None else f"{format_score(comp['score'])} ({comp['invalid_share']:.2f})",
                              "-" if math.isnan(m) else f"{m:+.3f} ± {se:.3f}", n])
            if "ranked" in r:
                m, se, n = paired_difference(records, r["evaluator"], r["dataset"], r["by"], dense, name, key="ranked")
                diff_rows.append([name, r["dataset"], r["evaluator"], "likelihood, ranked", f"{r['ranked']:.3f}",
                                  "-" if comp is None or "ranked" not in comp else f"{comp['ranked']:.3f}",
                                  "-" if math.isnan(m) else f"{m:+.3f} ± {se:.3f}", n])
    answered: dict[str, int] = {}
    for r in records:
        if r.get("status") == "ok":
            answered[r["model"]] = answered.get(r["model"], 0) + 1
    items = ", ".join(f"{d['name']} {d['items']} items ({', '.join(d['evaluators'])})" for d in cfg["datasets"])
    body = "\n".join([
        # the datasets in the title: two runs of one config on different datasets are two sections
        f"## halueval: hallucination detection of {dense} before and after Basel compression "
        f"({Path(args.config).stem}: {', '.join(d['name'] for d in cfg['datasets'])})",
        "",
        f"Ran: {items}; models {', '.join(m['name'] for m in cfg['models'])}; {minutes:.0f} minutes. "
        f"{run_load_sentence([run])}{(' ' + args.note) if args.note else ''}",
        "Item-evaluator answers recorded per model: " + ", ".join(f"{k} {v}" for k, v in answered.items()) + ".",
        "" if why_not is None else f"\nThe strongest offline instruct model (qwen2.5-coder-1.5b on llama.cpp) did "
                                   f"not run: {why_not}\n",
        "Sanity panel (scripted test instruments, not models):",
        "",
        *checks,
        "",
        "Does compression change the hallucination rate? Compressed minus dense, paired over the items both "
        "answered validly (score, invalid share in brackets):",
        "",
        markdown_table(["compressed model", "dataset", "evaluator", "by", f"dense ({dense})", "compressed",
                        "compressed - dense ± SE", "n"], diff_rows),
        "",
        *(["Ranked by likelihood, split by whether the item's hallucinated text is the longer of the two "
            "(a judge that reads only length ranks 1.0 on the first group and at most 0.5, on ties, on the second):", "",
            markdown_table(["dataset", "evaluator", "model", "hallucinated text longer", "ranked there",
                            "ranked elsewhere"],
                           split_rows), ""] if (split_rows := length_split(records, cfg)) else []),
        "Leaderboard:",
        "",
        "Accuracy at telling" + tables.rstrip(),
        "",
        f"Run directory: `{run}`; raw answers in `answers.jsonl` there.",
    ])
    print(body)
    write_section(section_name(cfg, args.config), body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

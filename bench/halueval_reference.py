"""Side by side with the anchor: eval-suite's own UHGEval/HaluEval evaluators and ours, on the same
model and the same items. Reports per-item agreement, the scores with their standard errors, and
wall time: ours on 2 Ray workers against eval-suite's one-item-at-a-time loop. Writes the
`halueval_reference` section of BENCHMARKS.md (one per model).

    python -m bench.halueval_reference --items 20                       # SmolLM2, eval-suite's HF wrapper
    python -m bench.halueval_reference --model qwen2.5-coder-1.5b --items 4 --qa-items 40

With `--model qwen2.5-coder-1.5b` both sides talk to llama.cpp servers over the OpenAI API: ours
through the `llamacpp` backend (2 actors, one single-slot server each, 1 thread), eval-suite through
its own OpenAIAPI wrapper on one single-slot server with 2 threads. That is the model that follows
the answer formats; SmolLM2 gives no valid answer on either side.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from bench.report import load_sentence, run_load_sentence, write_section
from core.config import ConfigError, apply_overrides, from_dict
from core.models import resolve
from core.runs import RunDir, markdown_table
from evals.config import HaluEvalJobConfig
from evals.data import load_items
from evals.experiment import evaluate
from evals.metrics import mean_se
from evals.reference import compare, reference_llm, reference_openai_llm, run_reference

SYSTEM = "You are a helpful assistant."

# the models this comparison knows how to run on both sides; the reference side is eval-suite's
# HuggingFace wrapper for an HF folder and its OpenAIAPI wrapper for a llama.cpp server
MODELS = {
    "smollm2-135m": {
        "label": "SmolLM2-135M-Instruct, its chat template with eval-suite's system message, greedy decoding on "
                 "both sides (eval-suite's HuggingFace wrapper, one prompt at a time; ours: the `hf` backend, {ours})",
        "system": SYSTEM,
        # prefix cache: an item's two queries share the news text (or the HaluEval instruction and
        # question), and an answer's options share its prompt; each is computed once
        "llm": {"backend": "hf", "hf": {"model": {"name": "smollm2-135m", "attn_implementation": "sdpa"}, "batch_size": 4,
                                        "prefix_cache": True},
                "pool": {"actors": 2, "batch_size": 4, "num_cpus": 1}},
        "section": "halueval_reference"},
    "qwen2.5-coder-1.5b": {
        "label": "Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) on llama.cpp, greedy, no system message on either side "
                 "(eval-suite's OpenAIAPI wrapper sends none), the server's chat template; ours: the `llamacpp` "
                 "backend, {ours}; eval-suite: its OpenAIAPI wrapper on one single-slot server at 2 threads",
        "system": "",
        # pool batch 2: an item's two queries (both continuations, orders or answers) share a long
        # prefix and go to the same server one after the other, which reuses its cached prefix. At
        # batch 1 they went to different servers: 1.1-1.5x slower per item, but every reply equal to
        # the reference's (52 of 52 on 2026-12-05, against 48 of 52 at batch 2: llama.cpp's logits
        # shift slightly with how much of a prompt comes from its cache, and greedy flips near-ties)
        "llm": {"backend": "llamacpp", "llamacpp": {"model": "qwen2.5-coder-1.5b", "threads": 1, "parallel": 1, "ctx": 4096},
                "pool": {"actors": 2, "batch_size": 2, "num_cpus": 1}},
        "section": "halueval_reference_qwen2.5-coder-1.5b"},
    # the same model on the HF side of both: agreement and speed on one backend, where the llama.cpp
    # entry above puts eval-suite on a 2-thread server against our two 1-thread ones
    "qwen2.5-coder-1.5b-hf": {
        "label": "Qwen2.5-Coder-1.5B-Instruct in fp32 (its Q4_K_M GGUF dequantized to an HF folder), its chat "
                 "template with eval-suite's system message, greedy decoding on both sides (eval-suite's "
                 "HuggingFace wrapper, one prompt at a time; ours: the `hf` backend, {ours})",
        "system": SYSTEM,
        "name": "qwen2.5-coder-1.5b",
        "llm": {"backend": "hf", "hf": {"model": {"name": "qwen2.5-coder-1.5b", "attn_implementation": "sdpa"},
                                        "batch_size": 2, "prefix_cache": True},
                "pool": {"actors": 2, "batch_size": 2, "num_cpus": 1}},
        "section": "halueval_reference_qwen2.5-coder-1.5b-hf"},
}


def label(spec: dict) -> str:
    """The model entry's description, with our side's actors, threads and slots as configured."""
    llm = spec["llm"]
    ours = ""
    if llm["backend"] == "llamacpp":
        lc, actors = llm["llamacpp"], llm["pool"]["actors"]
        slots = lc.get("parallel", 1)
        ours = (f"{actors} actor{'s' * (actors != 1)} with one server each at {lc.get('threads', 1)} "
                f"thread{'s' * (lc.get('threads', 1) != 1)}, " +
                ("single-slot" if slots == 1 else f"{slots} slots decoded together, context {lc.get('ctx')} "
                                                  "tokens shared by the slots"))
    if llm["backend"] == "hf":
        hf, actors = llm["hf"], llm["pool"]["actors"]
        ours = (f"{actors} actor{'s' * (actors != 1)}, " +
                ("the prefix cache on (rows one at a time, each reusing the KV cache of what it shares with the "
                 "row before)" if hf.get("prefix_cache") else f"batches of {hf.get('batch_size', 8)}, no prefix cache"))
    return spec["label"].format(ours=ours)


@contextlib.contextmanager
def reference_side(model: str, workdir: Path):
    """eval-suite's wrapper for `model`, ready to request; a llama.cpp server it needs is stopped on exit."""
    if MODELS[model]["llm"]["backend"] == "hf":
        yield reference_llm(resolve(MODELS[model].get("name", model)), SYSTEM, workdir)
        return
    from core.llm.llama_server import LlamaServer, server_binary
    from core.models import gguf_path

    with LlamaServer(gguf_path(model), server_binary(), threads=2, parallel=1, ctx=4096, alias=model) as server:
        yield reference_openai_llm(f"{server.url}/v1", model, workdir)


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
           f"{our_per_item:.1f}", f"{ref_per_item:.1f}",
           f"{ref_per_item / our_per_item:.2f}x" if our_per_item == our_per_item and our_per_item else "-"]
    return row, (om, ose, len(mine)), (tm, tse, len(theirs))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", choices=sorted(MODELS))
    ap.add_argument("--pool-batch", type=int, default=None,
                    help="our pool's prompts per actor call (default: the model's entry in MODELS); 1 sends an "
                         "item's two queries to different servers")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="change our side's llm config, e.g. llamacpp.parallel=2 or pool.actors=1 (keys under the "
                         "model's `llm` entry in MODELS; the reference side stays as it is)")
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
    spec = MODELS[args.model]
    if args.pool_batch is not None:
        if args.pool_batch < 1:
            ap.error(f"--pool-batch must be >= 1, got {args.pool_batch}")
        spec = {**spec, "llm": {**spec["llm"], "pool": {**spec["llm"]["pool"], "batch_size": args.pool_batch}}}
    if args.overrides:
        try:
            spec = {**spec, "llm": apply_overrides(spec["llm"], args.overrides)}
        except ConfigError as e:
            ap.error(f"--set: {e}")
    cfg = from_dict(HaluEvalJobConfig, {
        "seed": 0, "datasets": datasets, "similarity": "none", "chunk_items": 8, "ray_num_cpus": 2,
        "sampling": {"temperature": 0.0, "system_message": spec["system"]},
        "models": [{"name": args.model, "likelihood": False, "llm": spec["llm"]}],
        "run": {"root": args.out}})
    items = {d.name: load_items(d.name, d.items, cfg.seed) for d in cfg.datasets}
    if args.reference_only:
        return reference_only(args.model, cfg, items, Path(args.reference_only))
    if args.ours:
        return compare_dirs(args, cfg, items, Path(args.ours), Path(args.reference))

    # ours: 2 Ray actors, one model load each
    load_before = os.getloadavg()[0]
    run = RunDir.create("halueval", cfg.run.root)
    run.write_config(cfg)
    result = evaluate(cfg, run, items)
    ours_secs = {t["evaluator"]: t["seconds"] for t in result["timings"]}
    ours_load = result["timings"][0]["load_seconds"] if result["timings"] else float("nan")
    from evals.cache import AnswerCache

    cache = AnswerCache(run.file("answers"))

    # the reference: eval-suite's loop in this process
    work = Path(tempfile.mkdtemp(prefix="eval-suite-", dir=run.path))
    t0 = time.perf_counter()
    with reference_side(args.model, work) as llm:
        ref_load = time.perf_counter() - t0
        first = cfg.datasets[0]
        report, installed = {}, ""
        if hasattr(llm, "transformers5_fix"):
            # first as installed: how the reference behaves under transformers 5 (every request
            # raises inside its wrapper and is swallowed into "")
            llm.transformers5_fix = False
            before = type(llm).errors
            raw_out, _ = run_reference(first.evaluators[0], items[first.name], llm, work / "as-installed")
            raw_errors = type(llm).errors - before
            raw_valid = sum(bool(r["valid"]) for r in raw_out["results"])
            llm.transformers5_fix = True
            report["as_installed"] = {"evaluator": first.evaluators[0], "items": len(raw_out["results"]),
                                      "valid": raw_valid, "swallowed_exceptions": raw_errors,
                                      "overall": raw_out["overall"]}
            installed = as_installed_text(first.evaluators[0], raw_errors, raw_valid, len(raw_out["results"]))
        rows = []
        for d in cfg.datasets:
            for e in d.evaluators:
                before = type(llm).errors
                out, secs = run_reference(e, items[d.name], llm, work / e)
                cmp = compare(e, items[d.name], out, cache.load(args.model, d.name, e))
                row, (om, ose, on), (tm, tse, tn) = comparison_row(e, d.name, cmp, ours_secs.get(e, float("nan")),
                                                                   secs, len(out["results"]))
                report[e] = {**{k: v for k, v in cmp.items() if k != "pairs"}, "ours": [om, ose, on],
                             "theirs": [tm, tse, tn], "ours_s": ours_secs.get(e), "theirs_s": secs,
                             "reference_exceptions": type(llm).errors - before, "pairs": cmp["pairs"]}
                rows.append(row)
    run.write_json("reference_comparison.json", report)
    errors = sum(v.get("reference_exceptions", 0) for k, v in report.items() if k != "as_installed")
    body = "\n".join([
        f"## halueval: eval-suite's evaluators against ours (same model, same items): {args.model}",
        "",
        f"{label(spec)}; {args.items} seeded UHGEval concise items (from eval-suite) and "
        f"{args.qa_items or args.items} HaluEval QA items; our pool sends {spec['llm']['pool']['batch_size']} "
        f"prompts per actor call. {SAME_ITEMS} "
        f"{load_sentence(load_before)} Model loading is excluded on both sides "
        f"(ours: {ours_load:.0f} s for {spec['llm']['pool']['actors']} actors in parallel; eval-suite: {ref_load:.0f} s).",
        "",
        *([installed, ""] if installed else []),
        markdown_table(COLUMNS, rows),
        "",
        f"Exceptions inside eval-suite's wrapper{' after the transformers-5 fix' if installed else ''} (each "
        f"becomes an empty, 'invalid' reply): {errors}.",
        "",
        f"Run directory: `{run.path}` (`reference_comparison.json` has every item's pair).",
    ])
    print(body)
    if not args.no_write:
        write_section(spec["section"], body)
    return 0


SAME_ITEMS = ("The reference's selective evaluator asks one order (set by the hallucinated text's length parity) "
              "and its HaluEval judge shows one answer per item (a draw from Python's random seeded 0); ours asks "
              "both, and the comparison uses ours on the same order / answer, so per item ours sends twice the "
              "reference's queries on those two (both sides send two on disc_sentence, one per continuation). "
              "Scores are over each side's valid answers.")


def as_installed_text(evaluator: str, errors: int, valid: int, items: int) -> str:
    return (f"As installed, eval-suite 2.1.4 cannot evaluate a chat model under transformers 5: on {evaluator} its "
            f"HuggingFace wrapper raised on {errors} of {errors} requests (apply_chat_template returns a "
            f"BatchEncoding, which generate() rejects), safe_request swallowed every exception into an empty "
            f"reply, and the run reported {valid} valid of {items} items with no error (the known fault: an "
            "exception becomes an 'invalid' answer). The rows below use the reference with the ids taken out of "
            "the BatchEncoding, its only change to the request.")


def reference_only(model: str, cfg, items, out: Path) -> int:
    """eval-suite's loop alone (for the HF wrapper: as installed on the first evaluator, then with the
    transformers-5 fix)."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with reference_side(model, out) as llm:
        summary = {"model": model, "load_seconds": time.perf_counter() - t0}
        first = cfg.datasets[0]
        if hasattr(llm, "transformers5_fix"):
            llm.transformers5_fix = False
            raw, raw_s = run_reference(first.evaluators[0], items[first.name], llm, out / "as-installed")
            summary["as_installed"] = {"evaluator": first.evaluators[0], "errors": type(llm).errors,
                                       "valid": sum(bool(r["valid"]) for r in raw["results"]),
                                       "items": len(raw["results"]), "seconds": raw_s}
            llm.transformers5_fix = True
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        for d in cfg.datasets:
            for e in d.evaluators:
                before = type(llm).errors
                res, secs = run_reference(e, items[d.name], llm, out / e)
                (out / f"{e}.json").write_text(json.dumps(res, ensure_ascii=False))
                summary[e] = {"seconds": secs, "exceptions": type(llm).errors - before}
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
            mine_recs = cache.load(args.model, d.name, e)
            done = [it for it in items[d.name] if it.id in mine_recs and mine_recs[it.id].get("status") == "ok"]
            cmp = compare(e, done, out, mine_recs)
            rows.append(comparison_row(e, d.name, cmp, ours_secs.get(e, float("nan")), summary[e]["seconds"],
                                       len(out["results"]), len(done))[0])
    raw = summary.get("as_installed")
    spec = MODELS[args.model]
    body = "\n".join([
        f"## halueval: eval-suite's evaluators against ours (same model, same items): {args.model}",
        "",
        f"{label(spec)}; the same seeded items (UHGEval concise from eval-suite; HaluEval QA). {SAME_ITEMS} "
        f"{run_load_sentence([run_dir])}{(' ' + args.note) if args.note else ''}",
        "",
        *([as_installed_text(raw["evaluator"], raw["errors"], raw["valid"], raw["items"]), ""] if raw else []),
        markdown_table(COLUMNS, rows),
        "",
        f"Our run: `{run_dir}`; eval-suite's outputs: `{ref_dir}`.",
    ])
    print(body)
    if not args.no_write:
        write_section(spec["section"], body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

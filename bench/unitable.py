"""UniTable in miniature: pretrained vs from-scratch fine-tuning at the same budget, rapid_table
alongside, and KV-cache decoding speed; writes the `unitable` section of BENCHMARKS.md.

Runs the job (configs/unitable/laptop.yaml unless --config) as a fresh process, or rewrites the
section from a finished run:

    python -m bench.unitable
    python -m bench.unitable --from-run runs/bench-unitable/<stamp>/unitable/<run>
    python -m bench.unitable --from-run RUN --peer-from OTHER_RUN   # rapid_table rows from another run
    python -m bench.unitable --from-run RUN --also-run SEED1_RUN SEED2_RUN  # a per-seed table beside it
    python -m bench.unitable --peer-only RUN   # the `unitable_peer` section: rapid_table's rows alone

The laptop config lets rapid_table read 30 synthetic tables (it takes seconds each); a run with
`--set eval.peer_synthetic=200` and its training budgets cut gives its rows on every test table,
and `--peer-only` writes them without that run's (cut) arms.

Other seeds are the job's own runs (`python -m ray_jobs.unitable --config ... --set seed=1 --set
eval.peer=false`); the per-seed table reads each one's results.json and tokenizer metrics.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.report import run_job, run_load_sentence, section_for, write_section
from core.config import load


def merge_peer(res: dict, peer_run: Path) -> str:
    """rapid_table's rows from another run of the same config and seed (the same test images),
    and our arms' TEDS-struct on the tables it read (per-table scores), for a like-for-like row."""
    other = json.loads((peer_run / "results.json").read_text())["results"]
    if "rapid_table" not in other:
        raise SystemExit(f"{peer_run} has no rapid_table results")
    res["rapid_table"] = other["rapid_table"]
    n = other["rapid_table"]["synthetic"]["tables"]
    for arm in ("pretrained", "scratch"):
        syn = res.get(arm, {}).get("synthetic")
        if syn and "per_table_teds_struct" in syn:
            per = syn["per_table_teds_struct"][:n]
            res[arm]["synthetic_peer_subset"] = {"tables": n, "teds_struct": sum(per) / len(per),
                                                 "seconds_per_table": syn["seconds_per_table"]}
    return (f"rapid_table's rows come from run `{peer_run}` (same render config and seed, so the same test "
            "images); its seconds per table are from that run.")


def tokenizer_stats(run: Path) -> dict:
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line) if line.strip() else {}
        if row.get("stage") == "tokenizer":
            return row
    return {}


SEED_COLUMNS = ["seed", "pretrained", "from scratch", "paired difference ± SE", "tables pretrained higher / lower",
                "PubTabNet pretrained", "PubTabNet from scratch", "dVAE codes used (perplexity)"]


def seed_rows(runs: list[Path]) -> tuple[list[list], list[float]]:
    """One row per run (a seed) of the pretrained-vs-scratch comparison, and each seed's paired gain."""
    import yaml

    from tables.report import paired_gain

    rows, gains = [], []
    for run in runs:
        # the seed alone, read plainly: a run made before a config key was renamed still reads
        seed = yaml.safe_load((run / "config.yaml").read_text()).get("seed")
        res = json.loads((run / "results.json").read_text())["results"]
        p, s = res["pretrained"]["synthetic"], res["scratch"]["synthetic"]
        mean, se, ahead, behind = paired_gain(p, s)
        pub = [res[a].get("pubtabnet", {}).get("teds_struct") for a in ("pretrained", "scratch")]
        tk = tokenizer_stats(run)
        codes = f"{tk['codes_used']} of {tk['codebook']}" if tk else "-"
        if tk.get("code_perplexity") is not None:
            codes += f" ({tk['code_perplexity']:.1f})"
        rows.append([seed, f"{p['teds_struct']:.4f}", f"{s['teds_struct']:.4f}", f"{mean:+.4f} ± {se:.4f}",
                     f"{ahead} / {behind}", *(f"{v:.4f}" if v is not None else "-" for v in pub), codes])
        gains.append(mean)
    return rows, gains


def section(run: Path, minutes: float | None, config: str, peer_run: Path | None = None,
            also: list[Path] | None = None) -> str:
    from core.runs import markdown_table
    from tables.config import UniTableJobConfig
    from tables.report import paired_gain, results_table

    job = load(UniTableJobConfig, run / "config.yaml")
    data = json.loads((run / "results.json").read_text())
    res, kv, times = data["results"], data["kv"], data["times"]
    peer_note = merge_peer(res, peer_run) if peer_run else ""
    p, s = res.get("pretrained", {}).get("synthetic"), res.get("scratch", {}).get("synthetic")
    lines = [f"## UniTable table recognition (`ray_jobs.unitable`, {Path(config).name})", "",
             run_load_sentence([run]), "",
             f"What ran: {job.data.unlabelled} unlabelled + {job.data.labelled} labelled synthetic tables rendered with "
             f"Ray Data; dVAE (codebook {job.tokenizer.codebook}) on {job.tokenizer.images} of them; masked modelling "
             f"{job.pretrain.epochs} epochs on all unlabelled; structure+boxes fine-tuned {job.finetune.epochs} epochs "
             f"(encoder frozen for {job.finetune.freeze_encoder_epochs}) from the pretrained encoder and from scratch; "
             f"one content reader ({job.content.epochs} epochs on {job.content.crops} crops) shared by both arms; "
             f"{job.data.image_size} px input, encoder {job.model.encoder_layers} x d{job.model.d_model}. "
             f"rapid_table read the first {job.eval.peer_synthetic} synthetic test tables and the PubTabNet tables."
             + (f" Whole run {minutes:.0f} min." if minutes else ""), "",
             results_table(res), ""] + ([peer_note, ""] if peer_note else [])
    if p and s:
        d = p["teds_struct"] - s["teds_struct"]
        mean, se, _, _ = paired_gain(p, s)
        lines.append(f"- Target: pretrained beats from scratch on TEDS-struct (synthetic test): "
                     f"{p['teds_struct']:.4f} vs {s['teds_struct']:.4f} ({d:+.4f}; paired over the tables "
                     f"{mean:+.4f} ± {se:.4f} SE): **{'met' if d > 0 else 'missed'}** on this seed.")
    if also:
        rows, gains = seed_rows([run, *also])
        ahead = sum(g > 0 for g in gains)
        lines += ["", f"Per seed (this run and {len(also)} more runs of the job, each alone on the cores), TEDS-struct "
                  "on the synthetic test set:", "", markdown_table(SEED_COLUMNS, rows), "",
                  f"- Over {len(gains)} seeds: mean paired gain {sum(gains) / len(gains):+.4f}; pretrained ahead on "
                  f"{ahead} of {len(gains)} seeds."]
    if kv:
        ok = kv["speedup"] >= 3 and kv["identical"]
        lines.append(f"- Target: KV cache >= 3x faster at {kv['tokens']} structure tokens with identical outputs: "
                     f"{kv['cached_s']:.2f} s vs {kv['uncached_s']:.2f} s uncached (batch {kv['batch']}), "
                     f"{kv['speedup']:.1f}x, identical {kv['identical']}: **{'met' if ok else 'missed'}**.")
    lines.append("- Stage seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()) + ".")
    return "\n".join(lines)


def peer_section(run: Path) -> str:
    """rapid_table's rows alone, from a run that may have cut its own arms' budgets (they are not shown)."""
    from tables.config import UniTableJobConfig
    from tables.report import results_table

    job = load(UniTableJobConfig, run / "config.yaml")
    res = json.loads((run / "results.json").read_text())["results"]
    if "rapid_table" not in res:
        raise SystemExit(f"{run} has no rapid_table results: run the job with eval.peer=true")
    syn = res["rapid_table"].get("synthetic", {})
    return "\n".join([
        "## UniTable: rapid_table on the synthetic test tables (`ray_jobs.unitable`)", "",
        run_load_sentence([run]), "",
        f"What ran: rapid_table (SLANet-plus ONNX, RapidOCR) on {syn.get('tables', 0)} of the {job.data.test} synthetic "
        f"test tables (seed {job.seed}, tables of {job.data.render.min_rows}-{job.data.render.max_rows} rows and "
        f"{job.data.render.min_cols}-{job.data.render.max_cols} columns; any run of the same seed and render config "
        f"renders the same images) and the PubTabNet tables, from run `{run}`. Only rapid_table's rows are read; that "
        "run's own arms are not shown.", "",
        results_table({"rapid_table": res["rapid_table"]})])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/unitable/laptop.yaml")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--from-run", help="a finished run directory: rewrite the section from it")
    ap.add_argument("--out", default="runs/bench-unitable")
    ap.add_argument("--note", default="", help="a line to add under the table (e.g. how the run was resumed)")
    ap.add_argument("--peer-from", help="take rapid_table's rows from this finished run (same config and seed)")
    ap.add_argument("--also-run", nargs="+", default=[], metavar="RUN",
                    help="finished runs of the same config at other seeds: add the per-seed table")
    ap.add_argument("--peer-only", metavar="RUN", help="write the unitable_peer section: rapid_table's rows from RUN")
    args = ap.parse_args(argv)
    if args.peer_only:
        text = peer_section(Path(args.peer_only)) + (f"\n\n- {args.note}" if args.note else "")
        write_section("unitable_peer", text)
        print(text)
        return 0
    if args.from_run:
        run, minutes = Path(args.from_run), None
    else:
        run, minutes = run_job("unitable", args.config, args.set, args.out)
    text = section(run, minutes, args.config, Path(args.peer_from) if args.peer_from else None,
                   [Path(r) for r in args.also_run])
    if args.note:
        text += "\n- " + args.note
    write_section(section_for("unitable", args.config), text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

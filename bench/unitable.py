"""UniTable in miniature: pretrained vs from-scratch fine-tuning at the same budget, rapid_table
alongside, and KV-cache decoding speed; writes the `unitable` section of BENCHMARKS.md.

Runs the job (configs/unitable/laptop.yaml unless --config) as a fresh process, or rewrites the
section from a finished run:

    python -m bench.unitable
    python -m bench.unitable --from-run runs/bench-unitable/<stamp>/unitable/<run>
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.report import run_job, section_for, write_section
from core.config import load


def section(run: Path, minutes: float | None, config: str) -> str:
    from tables.config import UniTableJobConfig
    from tables.report import results_table

    job = load(UniTableJobConfig, run / "config.yaml")
    data = json.loads((run / "results.json").read_text())
    res, kv, times = data["results"], data["kv"], data["times"]
    p, s = res.get("pretrained", {}).get("synthetic"), res.get("scratch", {}).get("synthetic")
    lines = [f"## UniTable table recognition (`ray_jobs.unitable`, {Path(config).name})", "",
             "The 2 cores were shared with other work (up to 7 other sessions' jobs; load average 30-40) "
             "while this ran, so seconds are inflated; compare them only within this table.", "",
             f"What ran: {job.data.unlabelled} unlabelled + {job.data.labelled} labelled synthetic tables rendered with "
             f"Ray Data; dVAE (codebook {job.tokenizer.codebook}) on {job.tokenizer.images} of them; masked modelling "
             f"{job.pretrain.epochs} epochs on all unlabelled; structure+boxes fine-tuned {job.finetune.epochs} epochs "
             f"(encoder frozen for {job.finetune.freeze_encoder_epochs}) from the pretrained encoder and from scratch; "
             f"one content reader ({job.content.epochs} epochs on {job.content.crops} crops) shared by both arms; "
             f"{job.data.image_size} px input, encoder {job.model.encoder_layers} x d{job.model.d_model}. "
             f"rapid_table read the first {job.eval.peer_synthetic} synthetic test tables and the PubTabNet tables."
             + (f" Whole run {minutes:.0f} min." if minutes else ""), "",
             results_table(res), ""]
    if p and s:
        d = p["teds_struct"] - s["teds_struct"]
        lines.append(f"- Target: pretrained beats from scratch on TEDS-struct (synthetic test): "
                     f"{p['teds_struct']:.4f} vs {s['teds_struct']:.4f} ({d:+.4f}): **{'met' if d > 0 else 'missed'}**.")
    if kv:
        ok = kv["speedup"] >= 3 and kv["identical"]
        lines.append(f"- Target: KV cache >= 3x faster at {kv['tokens']} structure tokens with identical outputs: "
                     f"{kv['cached_s']:.2f} s vs {kv['uncached_s']:.2f} s uncached (batch {kv['batch']}), "
                     f"{kv['speedup']:.1f}x, identical {kv['identical']}: **{'met' if ok else 'missed'}**.")
    lines.append("- Stage seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()) + ".")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/unitable/laptop.yaml")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--from-run", help="a finished run directory: rewrite the section from it")
    ap.add_argument("--out", default="runs/bench-unitable")
    args = ap.parse_args(argv)
    if args.from_run:
        run, minutes = Path(args.from_run), None
    else:
        run, minutes = run_job("unitable", args.config, args.set, args.out)
    text = section(run, minutes, args.config)
    write_section(section_for("unitable", args.config), text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

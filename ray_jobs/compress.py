"""Application-specific low-rank compression: `python -m ray_jobs.compress --config configs/compression/laptop.yaml`.

Compresses the model's attention and MLP projections with Basel (basis relearning and
pruning on Ray Train workers) and with the SVD, FWSVD and ASVD baselines at each keep ratio,
and writes one table (target and off-target perplexity, parameters, file size, CPU latency),
a plot of perplexity against keep ratio and the Basel models (Hugging Face folders that
reload with `AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)`) into
runs/compress/<run>/. With RAY_ADDRESS set (as under `ray job submit`), joins that cluster.

`--resume runs/compress/<run>` continues an interrupted run with its saved config: every
(method, keep ratio) already in its metrics.jsonl is kept, the calibration statistics (ASVD's
sensitivity search is the slow part) are read back from target_stats.pt, and only what is
missing runs; a method cut off mid-way starts again.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys

from core.config import ConfigError
from core.ray import check_gpus, init_ray, local_gpu_count
from core.runs import RunDir, progress, setup_logging, upload_run
from ray_jobs.cli import load_job_config, parse_args, print_config_error

log = logging.getLogger("tailor.compression")


def main(argv: list[str] | None = None) -> int:
    args = parse_args("compress", __doc__, argv, resumable=True)
    setup_logging(args.verbose)
    from compression.bases import matching_linears
    from compression.config import CompressionConfig
    from compression.pipeline import check_causal_lm, check_steps, compress, evaluate, load_lm_data
    from compression.report import write_report
    from core.models import load_causal_lm, load_tokenizer

    try:
        cfg = load_job_config(CompressionConfig, args, "compress")
        check_causal_lm(cfg.model.name)
        dense = load_causal_lm(cfg.model, seed=cfg.seed)
        matching_linears(dense, cfg.target_modules, key="target_modules")
        tokenizer = load_tokenizer(cfg.model.name)
        data = load_lm_data(cfg, tokenizer)
        check_steps(cfg, data.train.shape[0])
        if args.dry_run:
            from ray_jobs.cli import dry_run

            return dry_run("compress", cfg)
        if not os.environ.get("RAY_ADDRESS"):
            check_gpus(1 if cfg.train.use_gpu else 0, local_gpu_count(), "train.use_gpu")
    except ConfigError as err:
        print_config_error(err)
        return 2

    init_ray(num_cpus=cfg.ray_num_cpus, verbose=args.verbose)
    run = RunDir(args.resume) if args.resume else RunDir.create("compress", cfg.run.root)
    if not args.resume:
        run.write_config(cfg)
    done = {(r["method"], float(r["ratio"])): r for r in (run.read_metrics() if args.resume else [])}
    log.info("run directory: %s; %d training blocks%s", run.path, data.train.shape[0],
             f"; resuming with {len(done)} finished rows" if done else "")
    try:
        rows = [done.get(("dense", 1.0))
                or {"method": "dense", "ratio": 1.0, **evaluate(dense, data, cfg, run.file("models/dense"), tokenizer, keep=False)}]
        if ("dense", 1.0) not in done:
            run.log_metrics(rows[0])
        dense.requires_grad_(False)  # kept to time every compressed model against, in turns
        stats = cached_target_stats(cfg, data, run.file("target_stats.pt"))
        for ratio in progress(cfg.keep_ratios, desc="keep ratios"):
            for method in cfg.methods:
                if (method, float(ratio)) in done:
                    log.info("%s at %.2f: finished before the resume, kept", method, ratio)
                    rows.append(done[(method, float(ratio))])
                    continue
                # a Basel cut off mid-way left Ray Train's folder of that name: start it clean
                shutil.rmtree(run.file("ray_train") / f"{method}-{ratio}", ignore_errors=True)
                model, info = compress(cfg, method, ratio, data, stats, run.file("ray_train"))
                row = {"method": method, "ratio": ratio,
                       **evaluate(model, data, cfg, run.file(f"models/{method}-{ratio}"), tokenizer, keep=method == "basel",
                                  reference=dense)}
                # the target layers' parameters, dense ones included (ASVD's search may leave some dense)
                row["linear_params"], row["budget"] = info["target_params"], info["budget"]
                if "ranks" in info:
                    run.write_json(f"{method}-{ratio}-ranks.json", info["ranks"])
                if "history" in info:
                    run.write_json(f"basel-{ratio}-history.json", info["history"])
                run.log_metrics(row)
                rows.append(row)
                log.info("%s at %.2f: target ppl %.2f, off-target ppl %.2f", method, ratio, row["target_ppl"],
                         row["off_target_ppl"])
        summary = write_report(cfg, run, rows)
        print("\n" + summary.split("![")[0].rstrip() + "\n")
        log.info("run directory: %s", run.path)
        return 0
    finally:
        upload_run(run, cfg.run.storage_path)


def cached_target_stats(cfg, data, path) -> dict:
    """compression.pipeline.target_stats, saved in the run so that a resume skips recomputing it
    (ASVD's sensitivity search alone takes about 27 minutes on the laptop config)."""
    import torch

    from compression.pipeline import target_stats
    from core.runs import atomic_write

    if path.is_file():
        return torch.load(path, weights_only=True)
    stats = target_stats(cfg, data)
    atomic_write(path, lambda f: torch.save(stats, f))
    return stats


if __name__ == "__main__":
    sys.exit(main())

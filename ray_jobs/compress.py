"""Application-specific low-rank compression: `python -m ray_jobs.compress --config configs/compression/laptop.yaml`.

Compresses the model's attention and MLP projections with Basel (basis relearning and
pruning on Ray Train workers) and with the SVD, FWSVD and ASVD baselines at each keep ratio,
and writes one table (target and off-target perplexity, parameters, file size, CPU latency),
a plot of perplexity against keep ratio and the Basel models (Hugging Face folders that
reload with `AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)`) into
runs/compress/<run>/. With RAY_ADDRESS set (as under `ray job submit`), joins that cluster.
"""

from __future__ import annotations

import logging
import os
import sys

from core.config import ConfigError
from core.ray import check_gpus, init_ray, local_gpu_count
from core.runs import RunDir, progress, setup_logging, upload_run
from ray_jobs.cli import parse_args, print_config_error

log = logging.getLogger("tailor.compression")


def main(argv: list[str] | None = None) -> int:
    args = parse_args("compress", __doc__, argv)
    setup_logging(args.verbose)
    from compression.bases import matching_linears
    from compression.config import CompressionConfig
    from compression.pipeline import check_causal_lm, check_steps, compress, evaluate, load_lm_data, target_stats
    from compression.report import write_report
    from core.config import load
    from core.models import load_causal_lm, load_tokenizer

    try:
        cfg = load(CompressionConfig, args.config, args.set)
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
    run = RunDir.create("compress", cfg.run.root)
    run.write_config(cfg)
    log.info("run directory: %s; %d training blocks", run.path, data.train.shape[0])
    try:
        rows = [{"method": "dense", "ratio": 1.0, **evaluate(dense, data, cfg, run.file("models/dense"), tokenizer, keep=False)}]
        run.log_metrics(rows[0])
        dense.requires_grad_(False)  # kept to time every compressed model against, in turns
        stats = target_stats(cfg, data)
        for ratio in progress(cfg.keep_ratios, desc="keep ratios"):
            for method in cfg.methods:
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


if __name__ == "__main__":
    sys.exit(main())

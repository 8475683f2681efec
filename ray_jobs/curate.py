"""Data curation: `python -m ray_jobs.curate --config configs/curation/laptop.yaml [--set k=v]`.

Embeds the configured texts with Ray Data, runs hierarchical k-means with resampling on Ray
workers that hold the embedding shards, and writes a balanced sample: selected.jsonl (or
.parquet) with ids and texts, cluster_sizes.png, summary.md and metrics.json in
runs/curate/<run>/. With RAY_ADDRESS set (as under `ray job submit`), joins that cluster.

`--resume runs/curate/<run>` reruns in that directory with its saved config: the embeddings
and every finished level are loaded, not recomputed.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys

from core.config import ConfigError
from core.ray import check_gpus, init_ray, local_gpu_count
from core.runs import RunDir, setup_logging, upload_run
from ray_jobs.cli import load_job_config, parse_args, print_config_error

log = logging.getLogger("tailor.curation")


def main(argv: list[str] | None = None) -> int:
    args = parse_args("curate", __doc__, argv, resumable=True)
    setup_logging(args.verbose)
    from curation.config import CurationConfig
    from curation.curate import check_inputs, curate, load_pool

    try:
        cfg = load_job_config(CurationConfig, args, "curation")
        pool = load_pool(cfg)
        check_inputs(cfg, pool)
        if args.dry_run:
            from ray_jobs.cli import dry_run

            return dry_run("curate", cfg)
        if not os.environ.get("RAY_ADDRESS"):
            gpus = max(cfg.workers.num_gpus, cfg.embed.num_gpus)
            check_gpus(gpus, local_gpu_count(), "workers.num_gpus")
    except ConfigError as err:
        print_config_error(err)
        return 2

    init_ray(num_cpus=cfg.ray_num_cpus, verbose=args.verbose)
    if args.resume:
        run = RunDir(args.resume)
    else:
        run = RunDir.create("curate", cfg.run.root)
    run.write_config(cfg)
    log.info("run directory: %s", run.path)
    try:
        try:
            numbers = curate(cfg, pool, run)
        except ConfigError as err:  # found by the workers: NaN rows, unreadable shards
            if not args.resume:  # a run that never computed anything leaves nothing behind
                shutil.rmtree(run.path, ignore_errors=True)
            print_config_error(err)
            return 2
        print(f"\nselected {numbers['selected']} of {numbers['n']} points; "
              + ", ".join(f"level {t + 1}: largest cluster {lv['largest_before']} -> {lv['largest_after']}"
                          for t, lv in enumerate(numbers["levels"])))
        print(f"run directory: {run.path} (summary.md, selected.{cfg.sample.output}, cluster_sizes.png)")
        return 0
    finally:
        upload_run(run, cfg.run.storage_path)


if __name__ == "__main__":
    sys.exit(main())

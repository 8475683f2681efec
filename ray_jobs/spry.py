"""Spry federated fine-tuning: `python -m ray_jobs.spry --config configs/spry/laptop.yaml [--set k=v]`.

With RAY_ADDRESS set (as under `ray job submit`), joins that cluster; else starts Ray locally.
"""

from __future__ import annotations

import logging
import sys

from core.config import ConfigError
from core.ray import check_gpus, init_ray, local_gpu_count
from core.runs import RunDir, setup_logging
from ray_jobs.cli import parse_args, print_config_error

log = logging.getLogger("tailor.spry")


def main(argv: list[str] | None = None) -> int:
    args = parse_args("spry", __doc__, argv)
    setup_logging(args.verbose)
    from core.config import load
    from fl.config import SpryConfig

    try:
        cfg = load(SpryConfig, args.config, args.set)
        import os

        if not os.environ.get("RAY_ADDRESS"):
            check_gpus(cfg.resources.num_gpus, local_gpu_count(), "resources.num_gpus")
        from fl.runtime import Runtime

        # Builds the model and data once in the driver: checks the model name, the adapter's
        # target modules, the dataset and the partition before Ray starts or a run dir exists.
        runtime = Runtime(cfg)
    except ConfigError as err:
        print_config_error(err)
        return 2

    resources = init_ray(num_cpus=cfg.resources.ray_num_cpus, verbose=args.verbose)
    try:
        check_gpus(cfg.resources.num_gpus, resources.get("GPU", 0.0), "resources.num_gpus")
    except ConfigError as err:
        print_config_error(err)
        return 2

    from core.partition import summarize
    from fl.app import run_spry
    from fl.memory import measure_in_subprocess
    from fl.report import write_report

    run = RunDir.create("spry", cfg.run.root)
    run.write_config(cfg)
    run.write_json("partition.json", summarize(runtime.partitions, runtime.train_labels, runtime.label_names))
    log.info("run directory: %s", run.path)
    result = run_spry(cfg, runtime, run)
    memory = None
    if cfg.memory_report:
        log.info("measuring one Spry step against one backprop step (fresh processes)")
        kw = dict(batch=cfg.fl.batch_size, seq=cfg.model.max_length, r=cfg.adapter.r,
                  targets=cfg.adapter.target_modules, device=cfg.model.device)
        memory = {mode: measure_in_subprocess(cfg.model.name, mode, **kw) for mode in ("jvp", "backprop")}
        run.write_json("memory.json", memory)
    summary = write_report(cfg, run, result.history, runtime, memory)
    print("\n" + summary.split("## Config")[0].rstrip() + "\n")
    log.info("run directory: %s", run.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""UniTable table recognition: `python -m ray_jobs.unitable --config configs/unitable/laptop.yaml`.

Renders synthetic tables with Ray Data, trains a dVAE visual tokenizer, pretrains the encoder by
masked tabular image modelling on Ray Train, fine-tunes structure + boxes from that encoder and
from scratch at the same budget, trains the cell-content reader, and evaluates both (TEDS,
TEDS-struct, box AP50) next to rapid_table on held-out synthetic tables and PubTabNet. Writes
runs/unitable/<run>/summary.md, cells.png and results.json. `--resume runs/unitable/<run>`
continues its Ray Train runs from their last epoch checkpoints.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from core.config import ConfigError
from core.ray import init_ray
from core.runs import RunDir, setup_logging, upload_run
from ray_jobs.cli import load_job_config, parse_args, print_config_error

log = logging.getLogger("tailor.tables")


def main(argv: list[str] | None = None) -> int:
    args = parse_args("unitable", __doc__, argv, resumable=True)
    setup_logging(args.verbose)
    from tables.config import UniTableJobConfig

    try:
        job = load_job_config(UniTableJobConfig, args, "UniTable")
        if job.data.pubtabnet_path and not Path(job.data.pubtabnet_path).exists():
            raise ConfigError("data.pubtabnet_path", f"{job.data.pubtabnet_path} does not exist; allowed: a folder "
                                                     "or .jsonl of PubTabNet, or null to skip it")
        if args.dry_run:
            from ray_jobs.cli import dry_run

            return dry_run("unitable", job)
    except ConfigError as err:
        print_config_error(err)
        return 2

    if job.use_ray:  # use_ray false (the tiny config) runs every stage in this process
        init_ray(num_cpus=job.ray_num_cpus, num_gpus=job.ray_num_gpus, verbose=args.verbose)
    from tables.experiment import run_unitable
    from tables.report import write_report

    run = RunDir(args.resume) if args.resume else RunDir.create("unitable", job.run.root)
    run.write_config(job)
    log.info("run directory: %s", run.path)
    try:
        out = run_unitable(job, run, run.file("ray_train"))
        summary = write_report(job, run, out)
        print("\n" + summary.split("![")[0].rstrip() + "\n")
        return 0
    finally:
        upload_run(run, job.run.storage_path)


if __name__ == "__main__":
    sys.exit(main())

"""The command line every job shares: --config, repeatable --set key=value, --verbose, --dry-run
(and --resume RUN_DIR for jobs that checkpoint). Exit codes: 0 success, 2 bad config (the
message names the field), anything else a failure."""

from __future__ import annotations

import argparse
import sys

from core.config import ConfigError


# configs/<folder>/ per job, where the folder is not the job's name
CONFIG_DIRS = {"curate": "curation", "compress": "compression"}


def parse_args(
    job: str, doc: str | None, argv: list[str] | None = None, resumable: bool = False, configure=None
) -> argparse.Namespace:
    """The shared arguments; `configure(parser)` adds a job's own (e.g. specialize's --from)."""
    ap = argparse.ArgumentParser(prog=f"python -m ray_jobs.{job}", description=(doc or "").strip().splitlines()[0])
    folder = CONFIG_DIRS.get(job, job)
    ap.add_argument("--config", help=f"YAML config, e.g. configs/{folder}/laptop.yaml (defaults when omitted)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set fl.rounds=5 (repeatable)")
    ap.add_argument("--verbose", action="store_true", help="show Flower's and Ray's own logs")
    ap.add_argument("--dry-run", action="store_true",
                    help="check the config against the cluster's resources (RAY_ADDRESS, else this machine), "
                         "print the plan (actors, CPUs and GPUs each, rounds or iterations) and exit")
    if resumable:
        ap.add_argument("--resume", metavar="RUN_DIR",
                        help=f"continue runs/{job}/<run> from its last checkpoint, with its saved config.yaml "
                             "(--set only for keys that leave the math alone, e.g. fl.rounds to extend it)")
    if configure is not None:
        configure(ap)
    return ap.parse_args(argv)


def load_job_config(cls, args: argparse.Namespace, what: str):
    """The job's typed config: --config with its --set overrides, or, with --resume RUN_DIR, the run's
    saved config.yaml (with --set for keys that leave the math alone). `what` names the job in errors."""
    from pathlib import Path

    from core.config import load

    resume = getattr(args, "resume", None)
    if not resume:
        return load(cls, args.config, args.set)
    if args.config:
        raise ConfigError("--config", "--resume continues with the run's saved config.yaml; drop --config")
    if not (Path(resume) / "config.yaml").is_file():
        raise ConfigError("--resume", f"{resume} has no config.yaml: not a {what} run directory")
    return load(cls, Path(resume) / "config.yaml", args.set)


def print_config_error(err: ConfigError) -> None:
    print(f"error: {err}", file=sys.stderr)


def dry_run(job: str, cfg) -> int:
    """--dry-run: the job's plan against the cluster's resources; 2 if the cluster cannot run it."""
    from ray_jobs import plans

    try:
        resources = plans.cluster_resources()
        lines = getattr(plans, f"plan_{job}")(cfg, resources)
    except ConfigError as err:
        print_config_error(err)
        return 2
    plans.print_plan(job, lines, resources)
    return 0

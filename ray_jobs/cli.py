"""The command line every job shares: --config, repeatable --set key=value, --verbose
(and --resume RUN_DIR for jobs that checkpoint)."""

from __future__ import annotations

import argparse
import sys

from core.config import ConfigError


def parse_args(
    job: str, doc: str | None, argv: list[str] | None = None, resumable: bool = False
) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=f"python -m ray_jobs.{job}", description=(doc or "").strip().splitlines()[0])
    ap.add_argument("--config", help=f"YAML config, e.g. configs/{job}/laptop.yaml (defaults when omitted)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set fl.rounds=5 (repeatable)")
    ap.add_argument("--verbose", action="store_true", help="show Flower's and Ray's own logs")
    if resumable:
        ap.add_argument("--resume", metavar="RUN_DIR",
                        help=f"continue runs/{job}/<run> from its last checkpoint, with its saved config.yaml "
                             "(--set only for keys that leave the math alone, e.g. fl.rounds to extend it)")
    return ap.parse_args(argv)


def print_config_error(err: ConfigError) -> None:
    print(f"error: {err}", file=sys.stderr)

"""Hallucination evaluation (UHGEval's evaluators, HaluEval): `python -m ray_jobs.halueval --config configs/halueval/laptop.yaml`.

Evaluates every model in the config (any core.llm backend, a local HF folder such as a Basel model
written by ray_jobs.compress, and the scripted oracle/constant/random judges, which are test
instruments) with UHGEval's discriminative-keyword, discriminative-sentence, selective (both
orders) and generative evaluators and HaluEval's judge, by parsed text and by likelihood. Items
spread over the model's Ray actor pool (one model load per actor); answers are cached per (model,
item, evaluator) under runs/halueval/<run>/answers, so `--resume runs/halueval/<run>` skips
finished items. Writes the leaderboard (summary.md, leaderboard.json, leaderboard.png) and the raw
answers (answers.jsonl). With RAY_ADDRESS set (as under `ray job submit`), joins that cluster.
"""

from __future__ import annotations

import logging
import sys

from core.config import ConfigError
from core.runs import RunDir, setup_logging, upload_run
from ray_jobs.cli import load_job_config, parse_args, print_config_error

log = logging.getLogger("tailor.evals")


def main(argv: list[str] | None = None) -> int:
    args = parse_args("halueval", __doc__, argv, resumable=True)
    setup_logging(args.verbose)
    from core.llm import check_backend
    from evals.config import HaluEvalJobConfig
    from evals.experiment import load_datasets

    try:
        cfg = load_job_config(HaluEvalJobConfig, args, "halueval")
        if args.dry_run:
            from ray_jobs.cli import dry_run

            return dry_run("halueval", cfg)
        for i, m in enumerate(cfg.models):
            if m.judge == "llm":
                check_backend(m.llm, f"models[{i}].llm")  # an unreachable server fails here, before Ray
        data = load_datasets(cfg)  # a bad dataset line names its file, line and field here
    except ConfigError as err:
        print_config_error(err)
        return 2

    # Ray starts (core.ray.init_ray) when the first pooled model has items left to answer
    from evals.experiment import evaluate

    run = RunDir(args.resume) if args.resume else RunDir.create("halueval", cfg.run.root)
    run.write_config(cfg)
    log.info("run directory: %s", run.path)
    try:
        evaluate(cfg, run, data)
        print("\n" + run.file("summary.md").read_text().split("![")[0].rstrip() + "\n")
        log.info("run directory: %s", run.path)
        return 0
    finally:
        upload_run(run, cfg.run.storage_path)


if __name__ == "__main__":
    sys.exit(main())

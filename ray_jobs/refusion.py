"""ReFusion, few-shot: `python -m ray_jobs.refusion --config configs/refusion/laptop.yaml [--set k=v]`.

Builds (once, cached) the sentence corpus and its FAISS index with Ray Data, retrieves k
neighbours per example, and runs every arm (no retrieval, concatenation, reranker, ordered
mask, ReFusion's bi-level search, Tune-picked choices) for every seed as Ray Tune trials that
report dev accuracy with checkpoints. Writes the table (accuracy over seeds, latency, FLOPs)
to runs/refusion/<run>/summary.md. `--resume runs/refusion/<run>` continues an interrupted run:
finished trials are kept, unfinished ones start again. With RAY_ADDRESS set (as under
`ray job submit`), joins that cluster.
"""

from __future__ import annotations

import logging
import sys

from core.config import ConfigError
from core.ray import init_ray
from core.runs import RunDir, setup_logging, upload_run
from ray_jobs.cli import load_job_config, parse_args, print_config_error

log = logging.getLogger("tailor.retrieval")


def main(argv: list[str] | None = None) -> int:
    args = parse_args("refusion", __doc__, argv, resumable=True)
    setup_logging(args.verbose)
    from core.models import load_backbone
    from retrieval.corpus import corpus_sentences
    from core.data import load_splits
    from retrieval.experiment import RefusionConfig, corpus_pools
    from retrieval.integrator import RetrievalIntegrator

    try:
        cfg = load_job_config(RefusionConfig, args, "refusion")
        if args.dry_run:
            from ray_jobs.cli import dry_run

            return dry_run("refusion", cfg)
        sentences = corpus_sentences(cfg.corpus, corpus_pools(cfg, *load_splits(cfg.data)))
        if cfg.k > len(sentences):
            raise ConfigError("k", f"k={cfg.k} is above the corpus size {len(sentences)}")
        probe = load_backbone(cfg.model)  # an encoder that is not there, or not a supported family
        names = RetrievalIntegrator(probe, cfg.k, probe.config.hidden_size).names
    except ConfigError as err:
        print_config_error(err)
        return 2
    except OSError as err:
        print_config_error(ConfigError("model.name", f"encoder {cfg.model.name!r} not found: {err}"))
        return 2

    init_ray(num_cpus=cfg.ray_num_cpus, verbose=args.verbose)
    from retrieval.experiment import arm_costs, prepare
    from retrieval.report import aggregate, write_report
    from retrieval.tune import run_trials

    run = RunDir(args.resume) if args.resume else RunDir.create("refusion", cfg.run.root)
    run.write_config(cfg)
    log.info("run directory: %s", run.path)
    try:
        try:
            prep = prepare(cfg, run.file("cache"))
        except ConfigError as err:
            print_config_error(err)
            return 2
        rows = run_trials(cfg, prep, names, run.file("tune"))
        # every trial's row, from the studies: a resumed run that was killed after logging them logs them once
        run.file("metrics.jsonl").unlink(missing_ok=True)
        for r in rows:
            run.log_metrics({k: v for k, v in r.items() if k != "path"})
        agg = aggregate(rows)
        cost = arm_costs(cfg, prep, agg)
        run.write_json("results.json", {"arms": {k: {kk: vv for kk, vv in v.items() if kk != "runs"} for k, v in agg.items()},
                                        "cost": cost})
        summary = write_report(cfg, run, agg, cost)
        print("\n" + summary.split("## Config")[0].rstrip() + "\n")
        return 0
    finally:
        upload_run(run, cfg.run.storage_path)


if __name__ == "__main__":
    sys.exit(main())

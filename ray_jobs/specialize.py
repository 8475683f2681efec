"""Specialization recipes: `python -m ray_jobs.specialize --config configs/specialize/classifier.yaml` chains the jobs' stages on one Ray cluster.

A recipe (configs/specialize/*.yaml) names stages in order: curate (curation), gold (GOLD),
spry (Spry on Flower) or central (backprop), refusion (ReFusion), compress (Basel) and lm_eval
(perplexity and the hallucination evaluators). Each stage calls its job's library code in this
process, reads its inputs' artifacts and writes its own (a dataset, a model folder, an index, a
report) atomically under runs/specialize/<run>/artifacts/<stage>-<key>/, the key a hash of the
stage's config and its inputs' keys. The recipe is checked before Ray starts (every input has a
producer of the right type, no cycle, every stage's resources fit the cluster) and a mistake
exits 2 naming `stages.<name>.<field>`. A stage whose artifact is complete (here, in an earlier
run under the same run.root, or under run.storage_path) is skipped; `--resume runs/specialize/<run>`
continues a run in its own directory; `--from STAGE` recomputes that stage and every stage after
it that reads its output. Stages whose inputs are ready run at once while their CPUs fit. Writes
summary.md (one row per stage: its metric, time and artifact) and metrics.png. With RAY_ADDRESS
set (as under `ray job submit`), joins that cluster.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from core.config import ConfigError
from core.runs import RunDir, setup_logging, upload_run
from ray_jobs.cli import parse_args, print_config_error

log = logging.getLogger("tailor.specialize")


def _add_from(ap) -> None:
    ap.add_argument("--from", dest="from_stage", metavar="STAGE",
                    help="recompute STAGE and every stage that reads its output, even where their artifacts are complete")


def main(argv: list[str] | None = None) -> int:
    args = parse_args("specialize", __doc__, argv, resumable=True, configure=_add_from)
    setup_logging(args.verbose)
    from core.config import load
    from ray_jobs import plans
    from specialize.recipe import SpecializeConfig, build_recipe, plan_recipe

    try:
        if args.resume:
            if args.config:
                raise ConfigError("--config", "--resume continues with the run's saved config.yaml; drop --config")
            if not (Path(args.resume) / "config.yaml").is_file():
                raise ConfigError("--resume", f"{args.resume} has no config.yaml: not a specialize run directory")
            cfg = load(SpecializeConfig, Path(args.resume) / "config.yaml", args.set)
        else:
            cfg = load(SpecializeConfig, args.config, args.set)
        recipe = build_recipe(cfg)
        if args.from_stage is not None and args.from_stage not in recipe.by_name:
            raise ConfigError("--from", f"no stage {args.from_stage!r}; the stages are: {', '.join(recipe.by_name)}")
        if args.dry_run:
            from ray_jobs.cli import dry_run

            return dry_run("specialize", cfg)
        resources = plans.cluster_resources()
        if cfg.ray_num_cpus is not None and not os.environ.get("RAY_ADDRESS"):
            resources["CPU"] = float(cfg.ray_num_cpus)
        _, stage_cpus = plan_recipe(recipe, resources)  # every stage's request against the cluster
    except ConfigError as err:
        print_config_error(err)
        return 2

    from core.ray import init_ray
    from specialize.artifacts import ArtifactStore
    from specialize.report import write_report
    from specialize.runner import StageFailed, run_recipe

    cluster = init_ray(num_cpus=cfg.ray_num_cpus, verbose=args.verbose)
    run = RunDir(args.resume) if args.resume else RunDir.create("specialize", cfg.run.root)
    run.write_config(cfg)
    log.info("run directory: %s", run.path)
    earlier = sorted((p / "artifacts" for p in run.path.parent.iterdir()
                      if p.is_dir() and p != run.path and (p / "artifacts").is_dir()), reverse=True)
    store = ArtifactStore(run.file("artifacts"), lookup=earlier, storage_path=cfg.run.storage_path)
    recompute = recipe.descendants(args.from_stage) if args.from_stage else set()
    try:
        try:
            records = run_recipe(recipe, run, store, stage_cpus, cluster.get("CPU", 1.0), recompute,
                                 on_record=lambda r: run.log_metrics({"stage": r.stage, "kind": r.kind, "key": r.key,
                                                                      "status": r.status, "seconds": r.seconds,
                                                                      **r.metrics}))
        except StageFailed as err:
            write_report(cfg, run, err.records, failure=str(err))
            print(f"error: {err}\nthe artifacts before it are kept; continue with: "
                  f"python -m ray_jobs.specialize --resume {run.path}", file=sys.stderr)
            return 1
        summary = write_report(cfg, run, records)
        print("\n" + summary.split("![")[0].rstrip() + "\n")
        log.info("run directory: %s", run.path)
        return 0
    finally:
        upload_run(run, cfg.run.storage_path)


if __name__ == "__main__":
    sys.exit(main())

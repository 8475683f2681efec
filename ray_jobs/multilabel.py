"""Multi-label classification with meta-learned label weights and thresholds (Wu et al. 2019): `python -m ray_jobs.multilabel --config configs/multilabel/laptop.yaml [--set k=v]`.

A GRU meta-learner over the labels emits a training weight and a decision threshold per label and
learns them by REINFORCE from the classifier's dev performance; baselines (BCE + 0.5, a global and
per-label thresholds tuned on dev, BCE with pos_weight, focal loss) run on the same split. Ray Tune
runs one trial per (arm, seed); `--resume runs/multilabel/<run>` continues an interrupted study.
runs/multilabel/<run>/summary.md holds the table (micro-F1, macro-F1, rarest-third F1 over seeds),
paired tests over seeds, and policy.png the learned thresholds and weights against label frequency.
"""

from __future__ import annotations

import logging
import sys
import time

from core.config import ConfigError
from core.ray import init_ray
from core.runs import RunDir, setup_logging, upload_run
from ray_jobs.cli import load_job_config, parse_args, print_config_error

log = logging.getLogger("tailor.multilabel")


def main(argv: list[str] | None = None) -> int:
    args = parse_args("multilabel", __doc__, argv, resumable=True)
    setup_logging(args.verbose)
    from multilabel.config import MultilabelJobConfig
    from multilabel.experiment import prepare

    try:
        job = load_job_config(MultilabelJobConfig, args, "multilabel")
        if args.dry_run:
            from ray_jobs.cli import dry_run

            return dry_run("multilabel", job)
        start = time.perf_counter()
        prep = prepare(job)  # data errors (bad JSONL lines, unseen test labels) exit 2 here, before Ray
        prep_s = time.perf_counter() - start
    except ConfigError as err:
        print_config_error(err)
        return 2

    init_ray(num_cpus=job.ray_num_cpus, verbose=args.verbose)
    from multilabel.report import by_method, comparisons, plot_policy, results_table, targets
    from multilabel.tune import collect, run_or_restore

    run = RunDir(args.resume) if args.resume else RunDir.create("multilabel", job.run.root)
    run.write_config(job)
    log.info("run directory: %s", run.path)
    try:
        start = time.perf_counter()
        results = collect(run_or_restore(job, prep, run.file("tune")))
        study_s = time.perf_counter() - start
        table = by_method(results)
        # every trial's rows, from the study: a resumed run that was killed after logging them logs them once
        run.file("metrics.jsonl").unlink(missing_ok=True)
        for r in results:
            for method, res in r["methods"].items():
                run.log_metrics({"method": method, "seed": r["seed"],
                                 **{k: v for k, v in res.items() if k in ("micro_f1", "macro_f1", "rare_f1",
                                                                          "dev_micro_f1", "dev_macro_f1")}})
        run.write_json("results.json", {"label_names": prep.split.label_names,
                                        "train_counts": prep.split.train_counts.tolist(), "trials": results})
        s = prep.split
        plot = plot_policy(run.file("policy.png"), table, s.train_counts,
                           f"{job.data.name}: learned thresholds and weights vs label frequency")
        cmp_table, _ = comparisons(table)
        sizes = ", ".join(f"{k} {len(v)}" for k, v in s.texts.items())
        summary = "\n".join([
            f"# multilabel: {job.data.name}, {s.num_labels} labels, seeds {job.seeds}", "",
            f"Split (split_seed {job.data.split_seed}): {sizes}. " + " ".join(s.notes), "",
            f"Features: {job.features.kind}" + (f" ({job.features.model})" if job.features.kind == "frozen" else
                                                f" ({job.features.max_features} terms)")
            + f"; classifier: {'linear' if job.classifier.hidden == 0 else f'MLP {job.classifier.hidden}'} head, "
              f"{job.classifier.epochs} epochs; meta-learner: {job.meta.episodes} episodes, order "
              f"{job.meta.order}, credit {job.meta.credit}.", "",
            "Macro-F1 averages the labels with a test positive; the rarest third is by training count.", "",
            results_table(table), "",
            "## Paired over seeds", "", cmp_table, "",
            "## Targets", "", *targets(table), "",
            f"Times: data and features {prep_s:.0f} s, Tune study {study_s:.0f} s.", "",
            *([f"![policy]({plot.name})"] if plot else []), ""])
        run.write_summary(summary)
        print("\n" + summary.split("![")[0].rstrip() + "\n")
        return 0
    finally:
        upload_run(run, job.run.storage_path)


if __name__ == "__main__":
    sys.exit(main())

"""GOLD distillation: `python -m ray_jobs.gold --config configs/gold/laptop.yaml [--set k=v]`.

An LLM teacher (core.llm: hf on a Ray actor pool, or an OpenAI-compatible server) writes
labelled training data; each iteration the student's energy picks out-of-distribution probes
as feedback for the next prompts and drops noisy samples. Ray Tune runs GOLD (trials over the
feedback band's start, the noise cut, samples and temperature, ASHA) and ZeroGen (no feedback,
the same generation budget), the same number of trials each, picked by the same rule; the best
trial's data trains the final student (with student.final_loss, the paper's SCE). The table in
runs/gold/<run>/summary.md adds the teacher's zero-shot accuracy and a student trained on the
real training data. `--resume runs/gold/<run>` continues interrupted Tune studies. With
RAY_ADDRESS set (as under `ray job submit`), joins that cluster.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np

from core.config import ConfigError
from core.ray import init_ray
from core.runs import RunDir, setup_logging, upload_run
from ray_jobs.cli import parse_args, print_config_error

log = logging.getLogger("tailor.distill")


def main(argv: list[str] | None = None) -> int:
    args = parse_args("gold", __doc__, argv, resumable=True)
    setup_logging(args.verbose)
    from core.config import load
    from core.llm import check_backend
    from distill.experiment import GoldJobConfig, load_data

    try:
        if args.resume:
            if args.config:
                raise ConfigError("--config", "--resume continues with the run's saved config.yaml; drop --config")
            if not (Path(args.resume) / "config.yaml").is_file():
                raise ConfigError("--resume", f"{args.resume} has no config.yaml: not a GOLD run directory")
            job = load(GoldJobConfig, Path(args.resume) / "config.yaml", args.set)
        else:
            job = load(GoldJobConfig, args.config, args.set)
        if args.dry_run:
            from ray_jobs.cli import dry_run

            return dry_run("gold", job)
        check_backend(job.gold.teacher, "gold.teacher")  # an unreachable server fails here, before Tune
        data = load_data(job)
    except ConfigError as err:
        print_config_error(err)
        return 2

    init_ray(num_cpus=job.ray_num_cpus, verbose=args.verbose)
    from core.llm import build_backend
    from distill.generate import zero_shot_predict
    from distill.gold import train_final_student, train_student
    from distill.report import write_generated, write_report
    from core.seeding import derive_seed
    from distill.experiment import trial_config
    from distill.tune import best_pool, run_or_restore

    run = RunDir(args.resume) if args.resume else RunDir.create("gold", job.run.root)
    run.write_config(job)
    log.info("run directory: %s", run.path)
    try:
        backend = build_backend(job.gold.teacher, "gold.teacher")
        texts, labels = data.test
        rows, pools, histories = [], {}, {}
        if job.zero_shot_examples:
            n = min(job.zero_shot_examples, len(texts))
            pred = zero_shot_predict(backend, data.task, texts[:n])
            acc = float((pred.cpu().numpy() == np.asarray(labels[:n])).mean())
            rows.append(["teacher zero-shot (label log-likelihood)", f"{acc:.4f}", "-", f"first {n} test examples"])
            run.log_metrics({"model": "teacher_zero_shot", "test_accuracy": acc, "examples": n})
        for arm in job.arms:
            grid = run_or_restore(job, data, backend, arm, run.file("tune"))
            params, pool, history = best_pool(grid, job.gold.iterations)
            pools[arm], histories[arm] = pool, history
            student = train_final_student(pool, data.task, trial_config(job.gold, params),
                                          storage=run.file("ray_train"), name=f"{arm}-student")
            acc = student.evaluate(texts, labels)["accuracy"]
            note = ", ".join(f"{k}={v}" for k, v in params.items() if k != "arm")
            rows.append([f"{arm} student", f"{acc:.4f}", len(pool), note])
            run.log_metrics({"model": arm, "test_accuracy": acc, "pool": len(pool), "params": params})
        if job.upper_bound_examples:
            n = min(job.upper_bound_examples, len(data.train))
            real = train_student(job.gold.student, data.task.label_names, data.train.texts[:n], data.train.labels[:n],
                                 job.gold.student.final_epochs, build_seed=derive_seed(job.gold.seed, "upper"),
                                 train_seed=derive_seed(job.gold.seed, "upper-train"),
                                 storage=run.file("ray_train"), name="upper-bound-student")
            acc = real.evaluate(texts, labels)["accuracy"]
            rows.append(["student on real training data (upper bound)", f"{acc:.4f}", n, ""])
            run.log_metrics({"model": "real_data", "test_accuracy": acc, "examples": n})
        write_generated(run, pools)
        summary = write_report(job, run, rows, histories, data.task.label_names)
        print("\n" + summary.split("![")[0].rstrip() + "\n")
        return 0
    finally:
        upload_run(run, job.run.storage_path)


if __name__ == "__main__":
    sys.exit(main())

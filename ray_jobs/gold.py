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

import numpy as np

from core.config import ConfigError
from core.ray import init_ray
from core.runs import RunDir, setup_logging, upload_run
from ray_jobs.cli import load_job_config, parse_args, print_config_error

log = logging.getLogger("tailor.distill")


def main(argv: list[str] | None = None) -> int:
    args = parse_args("gold", __doc__, argv, resumable=True)
    setup_logging(args.verbose)
    from core.llm import check_backend
    from distill.experiment import GoldJobConfig, load_data

    try:
        job = load_job_config(GoldJobConfig, args, "GOLD")
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
    from distill.experiment import trial_config, with_student
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
        # None: gold.student as configured; then each of also_students on the same pools and real data
        students = [None, *job.also_students]
        for arm in job.arms:
            grid = run_or_restore(job, data, backend, arm, run.file("tune"))
            params, pool, history = best_pool(grid, job.gold.iterations)
            pools[arm], histories[arm] = pool, history
            note = ", ".join(f"{k}={v}" for k, v in params.items() if k != "arm")
            for enc in students:
                student = train_final_student(pool, data.task, with_student(trial_config(job.gold, params), enc),
                                              storage=run.file("ray_train"), name=f"{arm}-student{_tag(enc)}")
                acc = student.evaluate(texts, labels)["accuracy"]
                rows.append([f"{arm} student{_label(enc, job)}", f"{acc:.4f}", len(pool), note])
                run.log_metrics({"model": f"{arm}{_tag(enc)}", "test_accuracy": acc, "pool": len(pool),
                                 "params": params, "student": enc or job.gold.student.model.name})
        if job.upper_bound_examples:
            n = min(job.upper_bound_examples, len(data.train))
            for enc in students:
                cfg = with_student(job.gold, enc).student
                real = train_student(cfg, data.task.label_names, data.train.texts[:n], data.train.labels[:n],
                                     cfg.final_epochs, build_seed=derive_seed(job.gold.seed, "upper"),
                                     train_seed=derive_seed(job.gold.seed, "upper-train"),
                                     storage=run.file("ray_train"), name=f"upper-bound-student{_tag(enc)}")
                acc = real.evaluate(texts, labels)["accuracy"]
                rows.append([f"student{_label(enc, job)} on real training data (upper bound)", f"{acc:.4f}", n, ""])
                run.log_metrics({"model": f"real_data{_tag(enc)}", "test_accuracy": acc, "examples": n,
                                 "student": enc or job.gold.student.model.name})
        write_generated(run, pools)
        summary = write_report(job, run, rows, histories, data.task.label_names)
        print("\n" + summary.split("![")[0].rstrip() + "\n")
        return 0
    finally:
        upload_run(run, job.run.storage_path)


def _tag(encoder: str | None) -> str:
    """The metrics name suffix of a student on another encoder: "" for gold.student's own."""
    return "" if encoder is None else f"@{encoder}"


def _label(encoder: str | None, job) -> str:
    """Which encoder a summary row's student is on, once there is more than one."""
    if not job.also_students:
        return ""
    return f" ({encoder or job.gold.student.model.name})"


if __name__ == "__main__":
    sys.exit(main())

"""Ray Tune drives GOLD: one trial is one GOLD run. Every iteration reports its metrics (dev
accuracy, kept, filtered, feedback energy) with a checkpoint (the generated data so far and the
student's trainable weights), ASHA stops weak trials early, and `Tuner.restore` continues an
interrupted study from the trials' last checkpoints."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from core.tune import drop_superseded_checkpoints, resumable_checkpoint_config
from distill.experiment import GoldData, GoldJobConfig, trial_config
from distill.gold import GoldState, gold_iteration, initial_state
from distill.student import Student

STATE, WEIGHTS = "state.json", "student.pt"


def gold_trial(params: dict, job: GoldJobConfig, data: GoldData, backend) -> None:
    """One GOLD run (Tune function trainable); resumes from the trial's checkpoint if there is one."""
    from ray import tune

    from core.seeding import derive_seed

    cfg = trial_config(job.gold, params)
    student = Student.build(cfg.student, data.task.label_names, seed=derive_seed(cfg.seed, "student", params["arm"]))
    state = initial_state(data.task)
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            state = GoldState.from_dict(json.loads((Path(d) / STATE).read_text()))
            student.load_trainable_state(torch.load(Path(d) / WEIGHTS))
    while state.iteration < cfg.iterations:
        state, metrics = gold_iteration(state, data.task, backend, student, cfg, dev=data.dev)
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / STATE).write_text(json.dumps(state.to_dict()))
            torch.save(student.trainable_state(), Path(d) / WEIGHTS)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def search_space(job: GoldJobConfig, arm: str) -> dict:
    from ray import tune

    s = job.search
    # Both arms: num_samples trials (a grid over the trial index, which seeds the trial's
    # generation) over the same generation keys; GOLD also searches its band and noise cut.
    space = {"arm": arm, "trial": tune.grid_search(list(range(s.num_samples))),
             "samples_per_label": tune.choice(s.samples_per_label), "temperature": tune.choice(s.temperature)}
    if arm == "gold":
        space |= {"band_low": tune.choice(s.band_low), "noise": tune.choice(s.noise)}
    return space


def make_tuner(job: GoldJobConfig, data: GoldData, backend, arm: str, storage: Path):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    s = job.search
    trainable = tune.with_resources(tune.with_parameters(gold_trial, job=job, data=data, backend=backend),
                                    {"cpu": s.cpus_per_trial})
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from core.seeding import derive_seed

    scheduler = ASHAScheduler(max_t=job.gold.iterations, grace_period=min(s.grace_period, job.gold.iterations))
    # num_samples=1: the grid over "trial" makes the arm's num_samples trials; a seeded generator
    # makes their tune.choice draws repeatable
    search = BasicVariantGenerator(random_state=derive_seed(job.gold.seed, "search", arm) % 2**32,
                                   max_concurrent=s.max_concurrent)
    return tune.Tuner(
        trainable,
        param_space=search_space(job, arm),
        tune_config=tune.TuneConfig(metric="dev_accuracy", mode="max", scheduler=scheduler, search_alg=search,
                                    num_samples=1),
        run_config=tune.RunConfig(name=arm, storage_path=str(Path(storage).resolve()), verbose=0,
                                  checkpoint_config=resumable_checkpoint_config()),
    )


def run_or_restore(job: GoldJobConfig, data: GoldData, backend, arm: str, storage: Path):
    """Fit the arm's study, or continue it when `storage/arm` holds an interrupted one."""
    from ray import tune

    path = Path(storage).resolve() / arm
    if tune.Tuner.can_restore(str(path)):
        trainable = tune.with_resources(tune.with_parameters(gold_trial, job=job, data=data, backend=backend),
                                        {"cpu": job.search.cpus_per_trial})
        tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = make_tuner(job, data, backend, arm, storage)
    grid = tuner.fit()
    drop_superseded_checkpoints(grid)
    return grid


def best_trial(metrics: list[dict], iterations: int | None = None) -> int:
    """Index of the trial with the best last dev accuracy, given each trial's last metrics.

    With `iterations`, only trials that ran all of them compete: a trial ASHA stopped early spent
    less of the generation budget, and the comparison with ZeroGen is at the same budget. Only
    when none finished do the others count. Ties go to the first trial.
    """
    if not metrics:
        raise ValueError("no trial to pick from")
    full = [i for i, m in enumerate(metrics) if iterations is not None and int(m.get("iteration", -1)) >= iterations - 1]
    return max(full or range(len(metrics)), key=lambda i: metrics[i]["dev_accuracy"])


def best_pool(result_grid, iterations: int | None = None) -> tuple[dict, list, list[dict]]:
    """(params, pool of samples, per-iteration metrics) of the best trial (`best_trial`)."""
    from distill.task import Sample

    done = [r for r in result_grid if r.error is None and r.checkpoint is not None and r.metrics]
    if not done:
        raise RuntimeError(f"no GOLD trial left a checkpoint: {[str(r.error) for r in result_grid]}")
    best = done[best_trial([r.metrics for r in done], iterations)]
    with best.checkpoint.as_directory() as d:
        state = json.loads((Path(d) / STATE).read_text())
    history = best.metrics_dataframe.to_dict("records") if best.metrics_dataframe is not None else []
    return best.config, [Sample.from_dict(s) for s in state["pool"]], history


__all__ = ["best_pool", "best_trial", "gold_trial", "make_tuner", "run_or_restore", "search_space"]

"""Ray Tune drives the ReFusion experiment: one trial per (arm, seed, learning rate), each
reporting dev accuracy every `fit.eval_every` steps with a checkpoint; and, for the
`tuned_choices` arm, Tune's search algorithm picks every module's candidate directly (the
discrete outer loop), with the inner fine-tuning inside each trial.

An interrupted study is restored (`--resume`): finished trials keep their results (a trial that
finished after the study's last snapshot finds its final checkpoint and reports it again), and
an unfinished one starts again from step 0. A trial is a few minutes, seeded, so it is cheaper to
rerun than to checkpoint its optimiser; so the checkpoints along the way hold only the choices,
and the trained weights (`model.pt`) go into the trial's last one."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch

from core.tune import drop_superseded_checkpoints, resumable_checkpoint_config
from retrieval.experiment import Prepared, RefusionConfig, run_arm
from retrieval.integrator import CANDIDATES

FINAL = "final.json"  # in a trial's last checkpoint: its final metrics


def trial(config: dict, cfg: RefusionConfig, prep: Prepared) -> None:
    from ray import tune

    choices = {k.split("/", 1)[1]: v for k, v in config.items() if k.startswith("choice/")} or None
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d, tempfile.TemporaryDirectory() as again:
            if (Path(d) / FINAL).is_file():
                # finished before the interruption, after the study's last snapshot: report it again
                shutil.copytree(d, again, dirs_exist_ok=True)
                tune.report(json.loads((Path(d) / FINAL).read_text()), checkpoint=tune.Checkpoint.from_directory(again))
                return

    trained = {}

    def on_eval(step: int, acc: float, model) -> None:
        trained["model"] = model  # trained in place: after run_arm, the final weights
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "choices.json").write_text(json.dumps(model.integrator.choices()))
            tune.report({"dev_accuracy": acc, "step": step}, checkpoint=tune.Checkpoint.from_directory(d))

    out = run_arm(cfg, prep, config["arm"], config["seed"], config["lr"], choices, on_eval=on_eval)
    final = {"dev_accuracy": out["dev_accuracy"], "test_accuracy": out["test_accuracy"],
             "choices": json.dumps(out["choices"]), "step": out["history"][-1]["step"], "done": True}
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "choices.json").write_text(json.dumps(out["choices"]))
        if "model" in trained:
            torch.save(trained["model"].state_dict(), Path(d) / "model.pt")
        (Path(d) / FINAL).write_text(json.dumps(final))
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(d))


def _tuner(cfg: RefusionConfig, prep: Prepared, param_space: dict, storage: Path, name: str, num_samples: int = 1):
    from ray import tune

    trainable = tune.with_resources(tune.with_parameters(trial, cfg=cfg, prep=prep),
                                    {"cpu": cfg.tune.cpus_per_trial, "gpu": cfg.tune.gpus_per_trial})
    path = Path(storage).resolve() / name
    if tune.Tuner.can_restore(str(path)):  # an interrupted run, resumed
        return tune.Tuner.restore(str(path), trainable=trainable, resume_unfinished=True, resume_errored=True)
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(metric="dev_accuracy", mode="max", num_samples=num_samples),
        run_config=tune.RunConfig(name=name, storage_path=str(Path(storage).resolve()), verbose=0,
                                  checkpoint_config=resumable_checkpoint_config()),
    )


def _fit(tuner):
    grid = tuner.fit()
    drop_superseded_checkpoints(grid)
    return grid


def _final(result_grid) -> list[dict]:
    rows = []
    for r in result_grid:
        if r.error is not None:
            raise RuntimeError(f"trial {r.config} failed: {r.error}")
        m = r.metrics
        rows.append({"arm": r.config["arm"], "seed": r.config["seed"], "lr": r.config["lr"],
                     "dev_accuracy": m["dev_accuracy"], "test_accuracy": m["test_accuracy"],
                     "choices": json.loads(m["choices"]), "path": r.path})
    return rows


def run_trials(cfg: RefusionConfig, prep: Prepared, module_names: list[str], storage: Path) -> list[dict]:
    """Every (arm, seed, lr) trial's final dev and test accuracy, and its chosen candidates."""
    from ray import tune

    rows: list[dict] = []
    fixed = [a for a in cfg.arms if a != "tuned_choices"]
    if fixed:
        space = {"arm": tune.grid_search(fixed), "seed": tune.grid_search(list(cfg.seeds)),
                 "lr": tune.grid_search(list(cfg.tune.learning_rates))}
        rows += _final(_fit(_tuner(cfg, prep, space, storage, "arms")))
    if "tuned_choices" in cfg.arms:
        for seed in cfg.seeds:
            space = {"arm": "tuned_choices", "seed": seed, "lr": cfg.tune.learning_rates[0],
                     **{f"choice/{n}": tune.choice(list(CANDIDATES)) for n in module_names}}
            grid = _final(_fit(_tuner(cfg, prep, space, storage, f"choices-seed{seed}", cfg.tune.choice_samples)))
            rows.append(max(grid, key=lambda r: r["dev_accuracy"]))  # Tune's pick for this seed, on dev
    return rows


__all__ = ["run_trials", "trial"]

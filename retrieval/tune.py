"""Ray Tune drives the ReFusion experiment: one trial per (arm, seed, learning rate), each
reporting dev accuracy every `fit.eval_every` steps with a checkpoint; and, for the
`tuned_choices` arm, Tune's search algorithm picks every module's candidate directly (the
discrete outer loop), with the inner fine-tuning inside each trial."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from retrieval.experiment import Prepared, RefusionConfig, run_arm
from retrieval.integrator import CANDIDATES


def trial(config: dict, cfg: RefusionConfig, prep: Prepared) -> None:
    from ray import tune

    choices = {k.split("/", 1)[1]: v for k, v in config.items() if k.startswith("choice/")} or None

    def on_eval(step: int, acc: float, model) -> None:
        with tempfile.TemporaryDirectory() as d:
            torch.save(model.state_dict(), Path(d) / "model.pt")
            (Path(d) / "choices.json").write_text(json.dumps(model.integrator.choices()))
            tune.report({"dev_accuracy": acc, "step": step}, checkpoint=tune.Checkpoint.from_directory(d))

    out = run_arm(cfg, prep, config["arm"], config["seed"], config["lr"], choices, on_eval=on_eval)
    tune.report({"dev_accuracy": out["dev_accuracy"], "test_accuracy": out["test_accuracy"],
                 "choices": json.dumps(out["choices"]), "step": out["history"][-1]["step"], "done": True})


def _tuner(cfg: RefusionConfig, prep: Prepared, param_space: dict, storage: Path, name: str, num_samples: int = 1):
    from ray import tune

    trainable = tune.with_resources(tune.with_parameters(trial, cfg=cfg, prep=prep),
                                    {"cpu": cfg.tune.cpus_per_trial, "gpu": cfg.tune.gpus_per_trial})
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(metric="dev_accuracy", mode="max", num_samples=num_samples),
        run_config=tune.RunConfig(name=name, storage_path=str(Path(storage).resolve()), verbose=0,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
    )


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
        rows += _final(_tuner(cfg, prep, space, storage, "arms").fit())
    if "tuned_choices" in cfg.arms:
        for seed in cfg.seeds:
            space = {"arm": "tuned_choices", "seed": seed, "lr": cfg.tune.learning_rates[0],
                     **{f"choice/{n}": tune.choice(list(CANDIDATES)) for n in module_names}}
            grid = _final(_tuner(cfg, prep, space, storage, f"choices-seed{seed}", cfg.tune.choice_samples).fit())
            rows.append(max(grid, key=lambda r: r["dev_accuracy"]))  # Tune's pick for this seed, on dev
    return rows


__all__ = ["run_trials", "trial"]

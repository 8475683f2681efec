"""Ray Tune runs the comparison: one trial per (arm, seed), where an arm is the baselines (one
classifier training each, sharing the BCE model) or the meta-learner with one reward. A meta trial
reports every episode with a checkpoint (policy, optimiser, baseline, episode), so
`Tuner.restore` continues an interrupted study from each trial's last episode; every finished
trial leaves its results in `result.json` in its last checkpoint."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from core.tune import drop_superseded_checkpoints, resumable_checkpoint_config
from multilabel.config import MultilabelJobConfig, arms
from multilabel.experiment import Prepared, run_baselines, run_meta_final

STATE, RESULT = "meta_state.pt", "result.json"
STUDY = "study"


def trial(params: dict, job: MultilabelJobConfig, prep: Prepared) -> None:
    from ray import tune

    from multilabel.meta import build_policy, initial_state, load_state, meta_episode, reference_reward

    torch.set_num_threads(max(1, int(job.tune.cpus_per_trial)))
    arm, seed = params["arm"], int(params["seed"])
    if arm == "baselines":
        results = run_baselines(prep, job, seed)
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / RESULT).write_text(json.dumps({"arm": arm, "seed": seed, "methods": results}))
            tune.report({"done": 1, "episode": 0, **{f"{m}_test_macro_f1": r["macro_f1"] for m, r in results.items()}},
                        checkpoint=tune.Checkpoint.from_directory(d))
        return
    kind = arm.split(":", 1)[1]
    s = prep.split
    policy = build_policy(s.label_names, s.train_counts, job.meta, seed)
    ckpt = tune.get_checkpoint()
    state = None
    if ckpt is not None:
        with ckpt.as_directory() as d:
            if (Path(d) / RESULT).is_file():  # finished before the interruption
                return
            state = load_state(policy, job.meta, torch.load(Path(d) / STATE, weights_only=False))
    if state is None:
        state = initial_state(policy, job.meta, reference_reward(prep.x, s.y, job.classifier, job.meta, kind, seed))
    while state.episode < job.meta.episodes:
        record = meta_episode(state, prep.x, s.y, job.classifier, job.meta, kind, seed)
        with tempfile.TemporaryDirectory() as d:
            torch.save(state.to_dict(), Path(d) / STATE)
            last = state.episode == job.meta.episodes
            if last:
                result = run_meta_final(prep, job, policy, seed)
                (Path(d) / RESULT).write_text(json.dumps({"arm": arm, "seed": seed, "methods": {arm: result},
                                                          "history": state.history}))
            tune.report({**record, "done": int(last)}, checkpoint=tune.Checkpoint.from_directory(d))


def _trainable(job: MultilabelJobConfig, prep: Prepared):
    from ray import tune

    resources = {"cpu": job.tune.cpus_per_trial}
    if job.tune.gpus_per_trial:
        resources["gpu"] = job.tune.gpus_per_trial
    return tune.with_resources(tune.with_parameters(trial, job=job, prep=prep), resources)


def run_or_restore(job: MultilabelJobConfig, prep: Prepared, storage: Path):
    """Fit the study (arms x seeds as a grid), or continue it when `storage/study` holds an interrupted one."""
    from ray import tune

    path = Path(storage).resolve() / STUDY
    if tune.Tuner.can_restore(str(path)):
        tuner = tune.Tuner.restore(str(path), trainable=_trainable(job, prep), resume_unfinished=True,
                                   resume_errored=True)
    else:
        tuner = tune.Tuner(
            _trainable(job, prep),
            param_space={"arm": tune.grid_search(arms(job)), "seed": tune.grid_search(list(job.seeds))},
            tune_config=tune.TuneConfig(max_concurrent_trials=job.tune.max_concurrent),
            run_config=tune.RunConfig(name=STUDY, storage_path=str(Path(storage).resolve()), verbose=0,
                                      checkpoint_config=resumable_checkpoint_config()),
        )
    grid = tuner.fit()
    drop_superseded_checkpoints(grid)
    return grid


def collect(result_grid) -> list[dict]:
    """Every finished trial's result.json; a trial that failed or did not finish is an error."""
    out, missing = [], []
    for r in result_grid:
        found = None
        if r.checkpoint is not None:
            with r.checkpoint.as_directory() as d:
                if (Path(d) / RESULT).is_file():
                    found = json.loads((Path(d) / RESULT).read_text())
        if found is None:
            missing.append(f"{r.config}: {r.error}")
        else:
            out.append(found)
    if missing:
        raise RuntimeError("trials without results: " + "; ".join(missing))
    return out


__all__ = ["collect", "run_or_restore", "trial"]

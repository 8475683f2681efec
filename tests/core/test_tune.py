"""core.tune: a resumable study keeps every checkpoint while it runs, and only the latest of each
trial once it has finished."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from core.tune import drop_superseded_checkpoints, resumable_checkpoint_config


def test_a_resumable_study_lets_tune_delete_nothing():
    assert resumable_checkpoint_config().num_to_keep is None


def _three_checkpoints(config):
    from ray import tune

    for step in range(3):
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "state.json").write_text(json.dumps({"step": step, "x": config["x"]}))
            tune.report({"step": step}, checkpoint=tune.Checkpoint.from_directory(d))


@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_only_each_trials_latest_checkpoint_outlives_the_study(ray_session, tmp_path):
    from ray import tune

    tuner = tune.Tuner(_three_checkpoints, param_space={"x": tune.grid_search([1, 2])},
                       run_config=tune.RunConfig(name="study", storage_path=str(tmp_path), verbose=0,
                                                 checkpoint_config=resumable_checkpoint_config()))
    grid = tuner.fit()
    trial_dirs = [Path(r.path) for r in grid]
    assert [len(list(d.glob("checkpoint_*"))) for d in trial_dirs] == [3, 3]

    assert drop_superseded_checkpoints(grid) == 4
    for r, d in zip(grid, trial_dirs):
        (left,) = d.glob("checkpoint_*")
        assert left == Path(r.checkpoint.path)
        assert json.loads((left / "state.json").read_text()) == {"step": 2, "x": r.config["x"]}
    assert drop_superseded_checkpoints(grid) == 0

    # the finished study still restores: every checkpoint its state names is there
    again = tune.Tuner.restore(str(tmp_path / "study"), trainable=_three_checkpoints).fit()
    assert sorted(json.loads((Path(r.checkpoint.path) / "state.json").read_text())["x"] for r in again) == [1, 2]


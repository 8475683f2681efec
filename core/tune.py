"""Ray Tune checkpointing that survives a killed driver.

Tune deletes a trial's superseded checkpoint (`CheckpointConfig(num_to_keep=k)`) as soon as the
next one registers, but writes the experiment state, which names each trial's latest checkpoint,
later in its loop and syncs it to storage later still. A driver killed in between leaves a state
that names a deleted checkpoint, and `Tuner.restore` then fails with "Could not recover from
checkpoint as it does not exist on storage anymore" (seen in CI on the multilabel kill-and-resume
test, with num_to_keep=1). So a study that may be resumed keeps every checkpoint while it runs
and drops the superseded ones once `fit()` has returned, when the final state is on storage.
"""

from __future__ import annotations

CHECKPOINT_PREFIX = "checkpoint_"


def resumable_checkpoint_config():
    """CheckpointConfig for a study that `Tuner.restore` may continue: Tune deletes nothing."""
    from ray import tune

    return tune.CheckpointConfig(num_to_keep=None)


def drop_superseded_checkpoints(result_grid) -> int:
    """Delete every trial's checkpoints but its latest (`Result.checkpoint`), on whatever
    filesystem the study's storage is; returns how many were deleted. Call after `fit()`."""
    from pyarrow import fs as pafs

    deleted = 0
    for result in result_grid:
        if result.checkpoint is None or not result.path:
            continue
        filesystem = result.filesystem
        keep = result.checkpoint.path.rstrip("/")
        for info in filesystem.get_file_info(pafs.FileSelector(result.path, allow_not_found=True)):
            name = info.path.rstrip("/").rsplit("/", 1)[-1]
            if info.type == pafs.FileType.Directory and name.startswith(CHECKPOINT_PREFIX) \
                    and info.path.rstrip("/") != keep:
                filesystem.delete_dir(info.path)
                deleted += 1
    return deleted


__all__ = ["drop_superseded_checkpoints", "resumable_checkpoint_config"]

"""Speed is timed in turns: each round times every model once, so drift cancels in a round's ratio."""

import torch
import torch.nn as nn

from compression.pipeline import paired_times


class Recorder(nn.Module):
    def __init__(self, name: str, log: list[str]):
        super().__init__()
        self.name, self.log = name, log

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        self.log.append(self.name if not self.training else "training")
        return input_ids.float().sum()


def test_models_take_turns_in_every_round():
    log: list[str] = []
    models = {"dense": Recorder("dense", log), "low": Recorder("low", log)}
    times = paired_times(models, torch.ones(2, 3, dtype=torch.long), rounds=4)
    assert log == ["dense", "low"] + ["dense", "low"] * 4  # one warm-up each, then turns; eval mode throughout
    assert {k: len(v) for k, v in times.items()} == {"dense": 4, "low": 4}
    assert all(t > 0 for ts in times.values() for t in ts)

"""The GOLD job's config and data: the base GOLD config, the real labelled data it is measured
on, the Tune search space, and the baselines (teacher zero-shot, ZeroGen, real-data student)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from core.config import require
from core.data import DataConfig, TextDataset, load_splits
from core.runs import RunConfig
from distill.config import GoldConfig
from distill.task import TaskSpec, task_from_data


@dataclass
class SearchConfig:
    """Ray Tune's search space (tune.choice over each list) and ASHA. GOLD and ZeroGen get the same
    number of trials (num_samples each, trial i generating from seed i) and the same selection
    rule (distill.tune.best_trial); the generation keys are searched in both arms, band_low and
    noise in GOLD only (ZeroGen has neither feedback nor an energy filter)."""

    band_low: list[float] = field(default_factory=lambda: [0.5])
    noise: list[float] = field(default_factory=lambda: [0.2])  # filter.noise: the noise cut and the band's top edge
    samples_per_label: list[int] = field(default_factory=lambda: [8])
    temperature: list[float] = field(default_factory=lambda: [1.0])
    num_samples: int = 2  # trials per arm
    grace_period: int = 2  # ASHA: iterations every trial gets before it can be stopped
    max_concurrent: int = 2
    cpus_per_trial: float = 1.0

    def validate(self) -> None:
        for key in ("band_low", "noise", "samples_per_label", "temperature"):
            require(len(getattr(self, key)) > 0, key, "name at least one value")
        require(all(0.0 <= n < 1.0 for n in self.noise), "noise", f"every value must be in [0, 1), got {self.noise}")
        require(all(lo < 1.0 - n for lo in self.band_low for n in self.noise), "noise",
                f"every band_low must be below every 1 - noise (the band's top edge): {self.band_low} vs {self.noise}")
        for key in ("num_samples", "grace_period", "max_concurrent"):
            require(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")


@dataclass
class GoldJobConfig:
    gold: GoldConfig = field(default_factory=GoldConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig(name="rotten_tomatoes", max_test=500))
    dev_size: int = 100  # real labelled examples (from the train split) Tune ranks trials by
    arms: list[Literal["gold", "zerogen"]] = field(default_factory=lambda: ["gold", "zerogen"])
    zero_shot_examples: int = 300  # test examples the teacher labels itself (0: skip)
    upper_bound_examples: int | None = 2000  # real training examples for the upper-bound student (0: skip)
    search: SearchConfig = field(default_factory=SearchConfig)
    run: RunConfig = field(default_factory=RunConfig)
    ray_num_cpus: int | None = None

    def validate(self) -> None:
        require(self.dev_size >= 2, "dev_size", f"must be >= 2, got {self.dev_size}")
        require(len(self.arms) > 0, "arms", "name at least one of gold, zerogen")
        require(self.zero_shot_examples >= 0, "zero_shot_examples", f"must be >= 0, got {self.zero_shot_examples}")


@dataclass
class GoldData:
    task: TaskSpec
    dev: tuple[list[str], list[int]]
    test: tuple[list[str], list[int]]
    train: TextDataset  # for the upper bound


def load_data(cfg: GoldJobConfig) -> GoldData:
    train, test = load_splits(cfg.data)
    task = task_from_data(cfg.gold.task, train, cfg.gold.seed)
    seeds = {e.text for e in task.examples}
    rng = np.random.default_rng(cfg.gold.seed)
    pool = [i for i in rng.permutation(len(train)) if train.texts[i] not in seeds]
    require(len(pool) >= cfg.dev_size, "dev_size", f"{cfg.dev_size} is more than the {len(pool)} training examples")
    dev = pool[: cfg.dev_size]
    return GoldData(task, ([train.texts[i] for i in dev], [int(train.labels[i]) for i in dev]),
                    (test.texts, [int(y) for y in test.labels]), train)


def trial_config(base: GoldConfig, params: dict) -> GoldConfig:
    """The GOLD config of one Tune trial: the base with the trial's arm and searched values."""
    from core.config import from_dict, to_dict

    data = to_dict(base)
    data["feedback"]["strategy"] = "none" if params["arm"] == "zerogen" else "band"
    if params.get("trial", 0):  # trial 0 is the base run; the others generate from their own seeds
        from core.seeding import derive_seed

        data["seed"] = derive_seed(base.seed, "trial", int(params["trial"]))
    for key, path in (("band_low", ("feedback", "band_low")), ("noise", ("filter", "noise")),
                      ("samples_per_label", ("generation", "samples_per_label")),
                      ("temperature", ("generation", "temperature"))):
        if key in params:
            data[path[0]][path[1]] = params[key]
    if params["arm"] == "zerogen":
        data["filter"]["noise"] = 0.0  # ZeroGen: no energy filtering either
    return from_dict(GoldConfig, data)


__all__ = ["GoldData", "GoldJobConfig", "SearchConfig", "load_data", "trial_config"]

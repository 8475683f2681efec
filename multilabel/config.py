"""The multilabel job's typed config (configs/multilabel/*.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from core.config import ConfigError, require
from core.runs import RunConfig
from multilabel.classifier import ClassifierConfig
from multilabel.data import DataConfig
from multilabel.features import FeaturesConfig
from multilabel.rewards import REWARDS

BASELINES = ("bce_0.5", "global_threshold", "per_label_thresholds", "pos_weight", "focal")


@dataclass
class MetaConfig:
    order: Literal["frequency", "hierarchy"] = "frequency"
    hidden: int = 32
    embed: int = 8
    sigma: float = 0.3  # exploration std of the pre-activations (fixed)
    lr: float = 0.01
    episodes: int = 20  # classifier trainings per meta-learner run
    threshold_samples: int = 8  # threshold draws scored per episode on the same dev probabilities
    baseline_beta: float = 0.8
    rewards: list[str] = field(default_factory=lambda: ["macro_f1_gain"])
    credit: Literal["per_label", "global"] = "per_label"
    temperature: float = 0.05  # margin reward's softness

    def validate(self) -> None:
        for key in ("hidden", "embed", "episodes", "threshold_samples"):
            require(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        require(self.sigma > 0, "sigma", f"must be > 0, got {self.sigma}")
        require(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        require(0.0 <= self.baseline_beta < 1.0, "baseline_beta", f"must be in [0, 1), got {self.baseline_beta}")
        require(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")
        for i, r in enumerate(self.rewards):
            require(r in REWARDS, f"rewards[{i}]", f"{r!r} is not allowed; allowed values: {', '.join(REWARDS)}")
        require(len(set(self.rewards)) == len(self.rewards), "rewards", f"has duplicates: {self.rewards}")


@dataclass
class BaselinesConfig:
    methods: list[str] = field(default_factory=lambda: list(BASELINES))
    threshold_points: int = 99  # tuning grid: this many thresholds evenly inside (0, 1)
    pos_weight_cap: float = 30.0
    focal_gamma: float = 2.0
    focal_alpha: float | None = None

    def validate(self) -> None:
        for i, m in enumerate(self.methods):
            require(m in BASELINES, f"methods[{i}]", f"{m!r} is not allowed; allowed values: {', '.join(BASELINES)}")
        require(self.threshold_points >= 1, "threshold_points", f"must be >= 1, got {self.threshold_points}")
        require(self.pos_weight_cap >= 1, "pos_weight_cap", f"must be >= 1, got {self.pos_weight_cap}")
        require(self.focal_gamma >= 0, "focal_gamma", f"must be >= 0, got {self.focal_gamma}")
        require(self.focal_alpha is None or 0 < self.focal_alpha < 1, "focal_alpha",
                f"must be in (0, 1) or null, got {self.focal_alpha}")


@dataclass
class TuneConfig:
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 2

    def validate(self) -> None:
        require(self.cpus_per_trial > 0, "cpus_per_trial", f"must be > 0, got {self.cpus_per_trial}")
        require(self.gpus_per_trial >= 0, "gpus_per_trial", f"must be >= 0, got {self.gpus_per_trial}")
        require(self.max_concurrent >= 1, "max_concurrent", f"must be >= 1, got {self.max_concurrent}")


@dataclass
class MultilabelJobConfig:
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    rare_fraction: float = 1 / 3
    ray_num_cpus: int | None = None
    run: RunConfig = field(default_factory=RunConfig)

    def validate(self) -> None:
        require(len(self.seeds) >= 1, "seeds", "needs at least one seed")
        require(len(set(self.seeds)) == len(self.seeds), "seeds", f"has duplicates: {self.seeds}")
        require(0 < self.rare_fraction <= 1, "rare_fraction", f"must be in (0, 1], got {self.rare_fraction}")
        require(self.ray_num_cpus is None or self.ray_num_cpus >= 1, "ray_num_cpus",
                f"must be >= 1 or null, got {self.ray_num_cpus}")
        if self.meta.order == "hierarchy" and self.data.name == "reuters":
            raise ConfigError("meta.order", "Reuters topics are flat: 'hierarchy' needs type paths like /a/b "
                                            "(FIGER); allowed here: 'frequency'")


def arms(job: MultilabelJobConfig) -> list[str]:
    """Tune trials per seed: one for the baselines (they share the BCE model), one per meta reward."""
    out = ["baselines"] if job.baselines.methods else []
    return out + [f"meta:{r}" for r in job.meta.rewards]


__all__ = ["BASELINES", "BaselinesConfig", "MetaConfig", "MultilabelJobConfig", "TuneConfig", "arms"]

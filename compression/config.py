"""The compression job's config: typed dataclasses, loaded by core.config from configs/compression/*.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from compression.ray_train import TrainConfig
from compression.train import BaselConfig
from core.config import require
from core.data import TEXT_POOLS
from core.models import ModelConfig
from core.runs import RunConfig

METHODS = ("basel", "svd", "fwsvd", "asvd")
# Every attention and MLP projection of Llama-style models; lm_head stays dense (tied to the
# input embeddings in SmolLM2: decomposing it would decompose the embedding with it).
LLAMA_LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LMDataConfig:
    target: str = "rotten_tomatoes"  # the application: a text pool (core.data.TEXT_POOLS) or file
    off_target: str = "halueval_summarization"  # text the application does not need
    text_column: str = "text"
    seq_len: int = 64
    max_train_blocks: int | None = None
    eval_blocks: int = 48  # held-out blocks per perplexity
    # The one calibration set, the first calibration_blocks training blocks, which Basel also
    # relearns on: FWSVD's Fisher, ASVD's activation statistics and ASVD's sensitivity sample
    # (asvd.sensitivity_blocks of them). The floor: >= 16k tokens (laptop: 256 x 64).
    calibration_blocks: int = 16

    def validate(self) -> None:
        require(self.seq_len >= 8, "seq_len", f"must be >= 8, got {self.seq_len}")
        for key in ("eval_blocks", "calibration_blocks"):
            require(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        require(self.max_train_blocks is None or self.max_train_blocks >= 1, "max_train_blocks",
                f"must be >= 1 or null, got {self.max_train_blocks}")


@dataclass
class AsvdConfig:
    alpha: float = 0.5  # S = diag(mean |x_j| ^ alpha)
    # ASVD's per-layer rank search (compression.asvd): the parameter-ratio grid each layer is
    # scored at, and how many calibration blocks each sensitivity perplexity runs on (the released
    # code scores on a smaller sample than its activation statistics too). search: false gives
    # every layer the keep ratio.
    search: bool = True
    grid: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    sensitivity_blocks: int = 4

    def validate(self) -> None:
        require(self.alpha > 0, "alpha", f"must be > 0, got {self.alpha}")
        require(len(self.grid) > 0 and all(0.0 < g < 1.0 for g in self.grid), "grid",
                f"name ratios in (0, 1), got {self.grid}")
        require(self.sensitivity_blocks >= 1, "sensitivity_blocks", f"must be >= 1, got {self.sensitivity_blocks}")


@dataclass
class FinetuneConfig:
    """The same short target fine-tune of the factorised layers for every method (0 steps: none)."""

    steps: int = 0
    lr: float = 1e-4
    batch_size: int = 8

    def validate(self) -> None:
        require(self.steps >= 0, "steps", f"must be >= 0, got {self.steps}")


@dataclass
class CompressionConfig:
    seed: int = 0
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="smollm2-135m", max_length=64))
    target_modules: list[str] = field(default_factory=lambda: list(LLAMA_LINEARS))
    keep_ratios: list[float] = field(default_factory=lambda: [0.75, 0.5, 0.3])
    methods: list[Literal["basel", "svd", "fwsvd", "asvd"]] = field(default_factory=lambda: list(METHODS))
    data: LMDataConfig = field(default_factory=LMDataConfig)
    basel: BaselConfig = field(default_factory=BaselConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    asvd: AsvdConfig = field(default_factory=AsvdConfig)
    latency_batch: int = 8  # blocks per timed forward pass
    latency_rounds: int = 5  # passes per model, each paired with one of the dense model (speed-up per round)
    run: RunConfig = field(default_factory=RunConfig)
    ray_num_cpus: int | None = None

    def validate(self) -> None:
        require(len(self.keep_ratios) > 0, "keep_ratios", "name at least one keep ratio")
        require(self.latency_rounds >= 1, "latency_rounds", f"must be >= 1, got {self.latency_rounds}")
        for i, r in enumerate(self.keep_ratios):
            require(0.0 < r <= 1.0, f"keep_ratios[{i}]", f"must be in (0, 1], got {r}")
        require(len(self.methods) > 0, "methods", f"name at least one of {', '.join(METHODS)}")
        require(len(self.target_modules) > 0, "target_modules", "name at least one linear layer")
        require(self.asvd.sensitivity_blocks <= self.data.calibration_blocks, "asvd.sensitivity_blocks",
                f"must be <= data.calibration_blocks ({self.data.calibration_blocks}): the sample comes from the "
                f"calibration set, got {self.asvd.sensitivity_blocks}")
        if self.data.max_train_blocks is not None:
            require(self.data.calibration_blocks <= self.data.max_train_blocks, "data.calibration_blocks",
                    f"must be <= data.max_train_blocks ({self.data.max_train_blocks}): calibration is the first "
                    f"training blocks, got {self.data.calibration_blocks}")
        if "asvd" in self.methods and self.asvd.search:
            require(min(self.asvd.grid) <= min(self.keep_ratios), "asvd.grid",
                    f"needs a ratio <= the lowest keep ratio {min(self.keep_ratios)} to reach it, got {self.asvd.grid}")
        for key, name in (("data.target", self.data.target), ("data.off_target", self.data.off_target)):
            if name not in TEXT_POOLS:
                from core.data import check_dataset_name

                check_dataset_name(name, key=key)


__all__ = ["AsvdConfig", "CompressionConfig", "FinetuneConfig", "LLAMA_LINEARS", "LMDataConfig", "METHODS"]

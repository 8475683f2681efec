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
    calibration_blocks: int = 16  # for FWSVD's Fisher and ASVD's activation statistics

    def validate(self) -> None:
        require(self.seq_len >= 8, "seq_len", f"must be >= 8, got {self.seq_len}")
        for key in ("eval_blocks", "calibration_blocks"):
            require(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        require(self.max_train_blocks is None or self.max_train_blocks >= 1, "max_train_blocks",
                f"must be >= 1 or null, got {self.max_train_blocks}")


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
    asvd_alpha: float = 0.5
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
        require(self.asvd_alpha > 0, "asvd_alpha", f"must be > 0, got {self.asvd_alpha}")
        for key, name in (("data.target", self.data.target), ("data.off_target", self.data.off_target)):
            if name not in TEXT_POOLS:
                from core.data import check_dataset_name

                check_dataset_name(name, key=key)


__all__ = ["CompressionConfig", "FinetuneConfig", "LLAMA_LINEARS", "LMDataConfig", "METHODS"]

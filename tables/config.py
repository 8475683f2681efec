"""The UniTable job's typed config (configs/unitable/{tiny,laptop,cluster}.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from core.config import require
from core.runs import RunConfig
from core.train import TrainConfig
from tables.model import ModelConfig
from tables.render import RenderConfig, max_structure_tokens


@dataclass
class DataConfig:
    image_size: int = 128  # the model's square input frame (UniTable: 448)
    unlabelled: int = 5000
    labelled: int = 500
    test: int = 200
    render: RenderConfig = field(default_factory=RenderConfig)
    render_blocks: int = 8  # Ray Data blocks rendered in parallel
    pubtabnet_path: str | None = "/work/shared/data/pubtabnet"  # a folder or .jsonl; null skips it
    pubtabnet_split: str | None = None
    pubtabnet_limit: int | None = None

    def validate(self) -> None:
        require(self.image_size >= 32, "image_size", f"must be >= 32, got {self.image_size}")
        require(self.labelled >= 1, "labelled", f"must be >= 1, got {self.labelled}")
        require(self.unlabelled >= 0 and self.test >= 1, "test", "unlabelled must be >= 0 and test >= 1")
        r = self.render
        require(1 <= r.min_rows <= r.max_rows and 1 <= r.min_cols <= r.max_cols, "render",
                "need 1 <= min_rows <= max_rows and 1 <= min_cols <= max_cols")


@dataclass
class TokenizerConfig:
    codebook: int = 256  # UniTable: 8192 (1M images) or 16384
    hidden: int = 64
    images: int = 1500  # how many unlabelled images train it (all of them are encoded)
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    tau_start: float = 1.0
    tau_end: float = 0.0625
    # KL of each position's code distribution to the uniform prior, as DALL-E's dVAE: at 0 the
    # laptop tokenizer used 2-6 of 256 codes (perplexity ~3), at 3 about 200 (perplexity ~14)
    kl_weight: float = 3.0

    def validate(self) -> None:
        require(self.codebook >= 2, "codebook", f"must be >= 2, got {self.codebook}")
        require(self.tau_start > 0 and self.tau_end > 0, "tau_end", "temperatures must be > 0")


@dataclass
class PretrainConfig:
    epochs: int = 2
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_steps: int = 20
    mask_ratio: float = 0.4  # UniTable: 300 of 784 patches
    min_block: int = 16
    min_aspect: float = 0.3

    def validate(self) -> None:
        require(0 < self.mask_ratio < 1, "mask_ratio", f"must be in (0, 1), got {self.mask_ratio}")


@dataclass
class FinetuneConfig:
    epochs: int = 4
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    freeze_encoder_epochs: int = 1  # UniTable: the first 4 of 48
    max_structure_len: int = 128  # tokens incl. <struct> and <eos> (UniTable: 512)
    max_box_len: int = 128  # 4 per non-empty cell + 2 (UniTable: 1024)

    def validate(self) -> None:
        require(0 <= self.freeze_encoder_epochs <= self.epochs, "freeze_encoder_epochs",
                f"must be between 0 and epochs ({self.epochs}), got {self.freeze_encoder_epochs}")


@dataclass
class ContentConfig:
    enabled: bool = True
    height: int = 32
    width: int = 128
    model: ModelConfig = field(default_factory=lambda: ModelConfig(d_model=96, ff=192, patch=8))
    crops: int = 3000  # training crops taken from the labelled tables
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    max_len: int = 24  # characters incl. <bos> and <eos> (UniTable: 200)

    def validate(self) -> None:
        p = self.model.patch
        require(self.height % p == 0 and self.width % p == 0, "model.patch",
                f"crop {self.height}x{self.width} is not divisible into {p}-pixel patches")


@dataclass
class EvalConfig:
    batch_size: int = 32
    peer: bool = True  # rapid_table side by side
    peer_synthetic: int = 40  # synthetic test tables the peer reads (it takes seconds per table)
    figure_tables: int = 4
    kv_benchmark_tokens: int = 512
    kv_benchmark_batch: int = 4


@dataclass
class UniTableJobConfig:
    seed: int = 0
    device: Literal["cpu", "cuda"] = "cpu"  # in-process work: tokenizer training and evaluation
    ray_num_cpus: int | None = None
    ray_num_gpus: int | None = None
    threads: int = 1  # torch threads per process
    # false: render in one loop and train in this process (the same functions, rank 0 of 1):
    # the tiny config's seconds-long end-to-end run. true: Ray Data renders, Ray Train trains.
    use_ray: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    content: ContentConfig = field(default_factory=ContentConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def validate(self) -> None:
        m = self.model
        require(m.d_model % m.heads == 0, "model.heads", f"d_model {m.d_model} is not divisible by {m.heads} heads")
        require(m.pos_embedding == "learned" or m.d_model % 4 == 0, "model.d_model",
                f"sincos positions need d_model divisible by 4, got {m.d_model}")
        require(m.patch % 8 == 0, "model.patch", f"must be a multiple of 8 (the dVAE's three stride-2 "
                                                 f"convolutions give one code per patch), got {m.patch}")
        require(self.data.image_size % m.patch == 0, "data.image_size",
                f"{self.data.image_size} is not divisible into {m.patch}-pixel patches")
        c = self.content.model
        require(c.d_model % c.heads == 0, "content.model.heads", f"d_model {c.d_model} is not divisible by {c.heads}")
        # sequence lengths must hold the data they will be trained on: refuse before any work
        r = self.data.render
        need = max_structure_tokens(r) + 2
        require(self.finetune.max_structure_len >= need, "finetune.max_structure_len",
                f"{self.finetune.max_structure_len} cannot hold a {r.max_rows}x{r.max_cols} table's structure "
                f"(up to {need} tokens with <struct> and <eos>); allowed: >= {need}")
        need = 4 * r.max_rows * r.max_cols + 2
        require(self.finetune.max_box_len >= need, "finetune.max_box_len",
                f"{self.finetune.max_box_len} cannot hold the boxes of a {r.max_rows}x{r.max_cols} table "
                f"(up to {need} tokens); allowed: >= {need}")
        grid = (self.data.image_size // m.patch) ** 2
        require(self.pretrain.min_block <= int(self.pretrain.mask_ratio * grid), "pretrain.min_block",
                f"{self.pretrain.min_block} is more than the {int(self.pretrain.mask_ratio * grid)} patches masked")
        require(self.device == "cpu" or self.train.use_gpu or self.ray_num_gpus, "device",
                "cuda for in-process work; set train.use_gpu and ray_num_gpus for the Ray Train workers too")


__all__ = ["ContentConfig", "DataConfig", "EvalConfig", "FinetuneConfig", "PretrainConfig", "TokenizerConfig",
           "UniTableJobConfig"]

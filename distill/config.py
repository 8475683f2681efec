"""GOLD's config: typed dataclasses, loaded by core.config from configs/gold/*.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from core.config import require
from core.llm import LLMConfig
from core.models import AdapterConfig, ModelConfig
from core.train import TrainConfig

FeedbackStrategy = Literal["band", "highest", "random", "none"]
StudentLoss = Literal["ce", "sce"]


@dataclass
class TaskConfig:
    description: str = "Short snippets of film reviews written by professional critics."
    sample_noun: str = "movie review snippet"
    # Names the teacher sees, one per dataset label in the dataset's order; null = the dataset's own.
    label_names: list[str] | None = None
    seed_examples: int = 3  # real training examples in every prompt (the paper: 3), spread over labels

    def validate(self) -> None:
        require(bool(self.description.strip()), "description", "must not be empty")
        require(bool(self.sample_noun.strip()), "sample_noun", "must not be empty")
        require(self.seed_examples >= 0, "seed_examples", f"must be >= 0, got {self.seed_examples}")
        if self.label_names is not None:
            require(len(self.label_names) >= 2, "label_names", f"needs at least 2 labels, got {self.label_names}")
            require(all(n.strip() for n in self.label_names), "label_names", "label names must not be empty")
            require(len({n.casefold() for n in self.label_names}) == len(self.label_names), "label_names",
                    f"label names must be unique (ignoring case), got {self.label_names}")


@dataclass
class GenerationConfig:
    samples_per_label: int = 8  # plain samples D_i per label per iteration
    probes_per_label: int = 4  # OOD probes Q_i per label; a "none" strategy spends them on plain samples
    max_new_tokens: int = 64
    temperature: float = 1.0  # 0 = greedy
    top_k: int = 10  # the released code samples with top-k 10; 0 = off
    top_p: float = 1.0
    min_chars: int = 10  # kept: min_chars < len(text) < max_chars (the paper's 10 < len < 400)
    max_chars: int = 400
    prefill: bool = True  # start the teacher's answer with "Text:" so a small model keeps the format
    # A sample sharing more than this fraction of its word trigrams with a seed example or an
    # earlier sample is a near copy and dropped as a duplicate (distill.filters.overlap); 1.0 drops
    # exact copies only. Small teachers copy their prompt's examples, often under the other label.
    max_overlap: float = 0.5

    def validate(self) -> None:
        require(self.samples_per_label >= 1, "samples_per_label", f"must be >= 1, got {self.samples_per_label}")
        require(self.probes_per_label >= 0, "probes_per_label", f"must be >= 0, got {self.probes_per_label}")
        require(self.max_new_tokens >= 1, "max_new_tokens", f"must be >= 1, got {self.max_new_tokens}")
        require(self.temperature >= 0, "temperature", f"must be >= 0 (0 = greedy), got {self.temperature}")
        require(self.top_k >= 0, "top_k", f"must be >= 0 (0 = off), got {self.top_k}")
        require(0.0 < self.top_p <= 1.0, "top_p", f"must be in (0, 1], got {self.top_p}")
        require(self.min_chars >= 0, "min_chars", f"must be >= 0, got {self.min_chars}")
        require(0.0 <= self.max_overlap <= 1.0, "max_overlap",
                f"must be in [0, 1] (1 = exact duplicates only), got {self.max_overlap}")
        require(self.max_chars > self.min_chars + 1, "max_chars",
                f"must exceed min_chars + 1 so some length is allowed, got {self.max_chars} with min_chars={self.min_chars}")


@dataclass
class FeedbackConfig:
    # band: GOLD (probes ranked by energy, ranks [band_low*n, (1 - filter.noise)*n)); highest: the
    # same count of the highest-energy probes; random: the same count at random; none: ZeroGen (no
    # probes, no feedback). The band's top edge is the noise cut (filter.noise), not a setting of its own.
    strategy: FeedbackStrategy = "band"
    band_low: float = 0.5
    every: int = 2  # feedback goes into the prompt on iterations i with i % every == 0 (the paper: even ones)
    temperature: float = 1.0  # T of the energy -T*logsumexp(f(x)/T)

    def validate(self) -> None:
        require(0.0 <= self.band_low < 1.0, "band_low", f"must be in [0, 1), got {self.band_low}")
        require(self.every >= 1, "every", f"must be >= 1, got {self.every}")
        require(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")


@dataclass
class FilterConfig:
    # The one noise setting (the paper: the top 20%): in every batch, plain samples and probes alike,
    # the floor(noise * n) highest-energy samples are noise. They are dropped before they join the
    # pool, and the feedback band ends where they begin, at rank (1 - noise) * n. 0 = no filtering.
    noise: float = 0.2
    # false: the noise ranks still end the feedback band but join the pool, as every D_i and Q_i does
    # in the paper's algorithm. The cut costs GOLD about a fifth of its samples, which ZeroGen (no
    # energy, no cut) keeps, so this is the equal-sample control of GOLD against ZeroGen.
    drop: bool = True

    def validate(self) -> None:
        require(0.0 <= self.noise < 1.0, "noise", f"must be in [0, 1) (0 = no filtering), got {self.noise}")


@dataclass
class StudentConfig:
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="minilm", max_length=64))
    adapter: AdapterConfig = field(default_factory=lambda: AdapterConfig(type="lora", r=8, alpha=16.0))
    loss: StudentLoss = "ce"  # the per-iteration student's loss (the paper: CE)
    # The final student's loss (the paper's final distillation: SCE, alpha 0.1, beta 1); null = `loss`.
    final_loss: StudentLoss | None = None
    sce_alpha: float = 0.1  # SCE = alpha * CE + beta * RCE (the paper: alpha 0.01 or 0.1, beta 1)
    sce_beta: float = 1.0
    lr: float = 1e-3
    weight_decay: float = 0.0
    # "prototype": before its first step the head is set from the training data's class means
    # (scale head_scale), as Spry's round 0 does; "random": the classifier's own initialisation.
    head_init: Literal["prototype", "random"] = "prototype"
    head_scale: float = 20.0  # logits are head_scale * cosine similarity: a softmax temperature
    batch_size: int = 16
    epochs_per_iteration: int = 1  # passes over the pool after each iteration (student kept, not re-initialised)
    final_epochs: int = 3  # passes of the fresh student trained on the final pool
    eval_batch_size: int = 64
    # null: the final student trains in-process. Set: on Ray Train workers (data-parallel over the
    # pool, DDP or DeepSpeed ZeRO-`zero_stage`); the per-iteration students stay in their trials.
    ray_train: TrainConfig | None = None

    def validate(self) -> None:
        for key in ("batch_size", "epochs_per_iteration", "final_epochs", "eval_batch_size"):
            require(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        require(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        require(self.head_scale > 0, "head_scale", f"must be > 0, got {self.head_scale}")
        require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        require(self.sce_alpha >= 0, "sce_alpha", f"must be >= 0, got {self.sce_alpha}")
        require(self.sce_beta >= 0, "sce_beta", f"must be >= 0, got {self.sce_beta}")
        if "sce" in (self.loss, self.final_loss):
            require(self.sce_alpha + self.sce_beta > 0, "sce_alpha", "sce_alpha + sce_beta must be > 0 with loss: sce")


@dataclass
class GoldConfig:
    task: TaskConfig = field(default_factory=TaskConfig)
    # The LLM that writes the data (core.llm: hf in-process or over a Ray actor pool, or any
    # OpenAI-compatible server)
    teacher: LLMConfig = field(default_factory=LLMConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    iterations: int = 10
    seed: int = 0

    def validate(self) -> None:
        require(self.iterations >= 1, "iterations", f"must be >= 1, got {self.iterations}")
        if self.feedback.strategy != "none":
            require(self.feedback.band_low < self.band_high(), "feedback.band_low",
                    f"must be below the band's top edge 1 - filter.noise = {self.band_high():g}, got {self.feedback.band_low}")
            require(self.generation.probes_per_label >= 1, "generation.probes_per_label",
                    f"feedback.strategy={self.feedback.strategy!r} selects feedback from probes: needs >= 1 probe "
                    "per label (or set feedback.strategy: none)")

    def band_high(self) -> float:
        """The feedback band's top edge: the noise cut (filter.noise) is the band's end."""
        return 1.0 - self.filter.noise

    def final_student(self) -> StudentConfig:
        """The final distillation's student config: the student's, with final_loss as its loss."""
        from dataclasses import replace

        s = self.student
        return s if s.final_loss is None else replace(s, loss=s.final_loss)

    def samples_per_label(self) -> int:
        """Plain samples per label per iteration: without probes their budget goes to plain samples,
        so ZeroGen and GOLD spend the same number of generations."""
        g = self.generation
        return g.samples_per_label + (g.probes_per_label if self.feedback.strategy == "none" else 0)

    def probes_per_label(self) -> int:
        return 0 if self.feedback.strategy == "none" else self.generation.probes_per_label

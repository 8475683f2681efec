"""The halueval job's config: typed dataclasses loaded by core.config from configs/halueval/*.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from core.config import ConfigError, require
from core.llm import LLMConfig
from core.runs import RunConfig
from evals.evaluators import EVALUATORS, build_evaluator

JUDGES = ("llm", "oracle", "constant", "random")


@dataclass
class ModelEntry:
    name: str = "smollm2-135m"  # the row label in the leaderboard and the answer cache's folder
    judge: Literal["llm", "oracle", "constant", "random"] = "llm"  # the last three are scripted test instruments
    llm: LLMConfig = field(default_factory=LLMConfig)
    prompt_format: Literal["chat", "raw"] = "chat"  # chat: the tokenizer's template; raw: the text as is
    likelihood: bool = True  # also score the options by log-probability, where the backend gives them

    def validate(self) -> None:
        require(bool(self.name.strip()), "name", "a model needs a name")


@dataclass
class DatasetEntry:
    name: str = "uhgeval"  # a short name (evals.data.DATASETS) or a .jsonl file in either schema
    items: int | None = 50  # a seeded sample of this many; null: all
    evaluators: list[str] = field(default_factory=lambda: ["disc_keyword", "disc_sentence", "selective", "generative"])

    def validate(self) -> None:
        require(self.items is None or self.items >= 1, "items", f"must be >= 1 or null, got {self.items}")
        require(len(self.evaluators) > 0, "evaluators", f"name at least one of {', '.join(EVALUATORS)}")
        for i, e in enumerate(self.evaluators):
            if e not in EVALUATORS:
                raise ConfigError(f"evaluators[{i}]", f"unknown evaluator {e!r}; allowed: {', '.join(EVALUATORS)}")


@dataclass
class SamplingConfig:
    """UHGEval's sampling; max_new_tokens is each evaluator's own (24, HaluEval 8, generative 128)."""

    temperature: float = 0.1
    top_p: float = 0.9
    top_k: int = 5
    system_message: str = "You are a helpful assistant."  # eval-suite's HuggingFace default; chat format only

    def validate(self) -> None:
        require(self.temperature >= 0, "temperature", f"must be >= 0 (0 = greedy), got {self.temperature}")
        require(0 < self.top_p <= 1, "top_p", f"must be in (0, 1], got {self.top_p}")
        require(self.top_k >= 0, "top_k", f"must be >= 0 (0 = off), got {self.top_k}")


@dataclass
class HaluEvalJobConfig:
    seed: int = 0
    models: list[ModelEntry] = field(default_factory=lambda: [ModelEntry()])
    datasets: list[DatasetEntry] = field(default_factory=lambda: [DatasetEntry()])
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    keywords: Literal["model", "jieba"] = "model"  # generative: who extracts the continuation's keywords
    similarity: Literal["minilm", "none"] = "minilm"  # generative: all-MiniLM-L6-v2 cosine, or none
    chunk_items: int = 8  # items whose queries go to the backend in one call (spread over the pool)
    retries: int = 2  # per failed backend call, before its items are asked one by one
    backoff_s: float = 1.0
    run: RunConfig = field(default_factory=RunConfig)
    ray_num_cpus: int | None = None

    def validate(self) -> None:
        require(len(self.models) > 0, "models", "name at least one model or scripted judge")
        require(len(self.datasets) > 0, "datasets", "name at least one dataset")
        require(self.chunk_items >= 1, "chunk_items", f"must be >= 1, got {self.chunk_items}")
        require(self.retries >= 0, "retries", f"must be >= 0, got {self.retries}")
        names = [m.name for m in self.models]
        for i, n in enumerate(names):
            require(names.index(n) == i, f"models[{i}].name", f"{n!r} is used twice; answers are cached per name")
        for i, m in enumerate(self.models):
            if m.judge == "llm":
                from core.models import check_model_name

                if m.llm.backend == "hf":
                    check_model_name(m.llm.hf.model.name, key=f"models[{i}].llm.hf.model.name")
        from evals.data import dataset_path, read_jsonl

        for i, d in enumerate(self.datasets):
            schema, path = dataset_path(d.name, key=f"datasets[{i}].name")
            if schema is None:
                first = read_jsonl(path, limit=1)
                schema = first[0].schema if first else None
                require(schema is not None, f"datasets[{i}].name", f"{path} has no items")
            for j, e in enumerate(d.evaluators):
                if schema not in build_evaluator(e).schemas:
                    from evals.evaluators import EVALUATORS as ALL

                    ok = [x for x in ALL if schema in build_evaluator(x).schemas]
                    raise ConfigError(f"datasets[{i}].evaluators[{j}]",
                                      f"{e!r} does not apply to {d.name!r} ({schema} schema); allowed: {', '.join(ok)}")


__all__ = ["DatasetEntry", "HaluEvalJobConfig", "JUDGES", "ModelEntry", "SamplingConfig"]

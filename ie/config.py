"""The chatie job's config: the LLM backend (core.llm), the chat settings, and the datasets, each a
task, a schema and a source (our JSONL format, or a shipped dataset read through its converter)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.config import ConfigError, require
from core.llm import LLMConfig
from core.runs import RunConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
Method = Literal["chatie", "chatie_loglik", "single_turn"]


def find_path(p: str) -> Path:
    """A relative path is looked up from the working directory, then from the repository root and
    each folder above it (so 'shared/data/wnut17' finds a data folder beside the checkout)."""
    path = Path(p).expanduser()
    if path.is_absolute() or path.exists():
        return path
    for base in [REPO_ROOT, *REPO_ROOT.parents]:
        if (base / path).exists():
            return base / path
    return path


@dataclass
class DatasetConfig:
    name: str  # its label in the summary and file names
    task: Literal["ner", "re", "ee"]
    path: str  # our JSONL file, or the dataset's file or folder for a converter
    schema: str  # a schema YAML path, or a shipped schema's name (wnut17, fewrel, wikievents)
    source: Literal["jsonl", "wnut17", "fewrel", "wikievents"] = "jsonl"
    limit: int | None = None  # the first N inputs
    per_relation: int = 10  # fewrel: sentences per relation
    relations: int | None = None  # fewrel: the first N relations (null: all)
    docs: int | None = None  # wikievents: the first N documents (null: all)
    spacy: bool = False  # NER only: also score the spaCy reference (needs a map in ie.spacy_ref)
    methods: list[Method] | None = None  # null: chat.methods; [] with spacy: the spaCy reference only

    def validate(self) -> None:
        require(bool(self.name.strip()) and "/" not in self.name, "name", f"a short file-safe label, got {self.name!r}")
        require(self.limit is None or self.limit >= 1, "limit", f"must be >= 1 or null, got {self.limit}")
        require(self.per_relation >= 1, "per_relation", f"must be >= 1, got {self.per_relation}")
        expected = {"wnut17": "ner", "fewrel": "re", "wikievents": "ee"}.get(self.source)
        require(expected is None or expected == self.task, "task",
                f"source {self.source!r} is a {expected} dataset, got task {self.task!r}")
        require(not self.spacy or self.task == "ner", "spacy", "the spaCy reference is for NER datasets only")
        require(self.methods is None or len(set(self.methods)) == len(self.methods),
                "methods", f"null, or distinct methods from chatie, chatie_loglik, single_turn; got {self.methods}")
        require(self.methods != [] or self.spacy, "methods", "[] runs no LLM method: only with spacy: true")


@dataclass
class ChatConfig:
    methods: list[Method] = field(default_factory=lambda: ["chatie", "single_turn"])
    max_new_tokens: int = 128  # per answer
    temperature: float = 0.0  # 0: greedy
    seed: int = 0
    batch_inputs: int = 16  # dialogues advanced together; their turns go to the backend as one batch
    system_prompt: str | None = None  # null: ie.prompts.SYSTEM
    # keep each predicted string as the text writes it, and drop one the text does not hold (ie.ground);
    # false: the answers' strings as they are, as the paper scores them
    ground: bool = True
    # chatie_loglik: ask stage II about at most this many of the types scored Yes, those with the
    # largest Yes-minus-No log-probability; 0 = every type scored Yes. A small model says Yes to
    # many types (Qwen2.5-Coder-1.5B: 5.7 of FewRel's 16 relations a sentence)
    stage1_top_k: int = 0
    # counting tokens: a core.models name or path of the model's tokenizer; null: the hf model's own,
    # and with another backend an estimate of 4 characters per token
    tokenizer: str | None = None

    def validate(self) -> None:
        require(len(self.methods) >= 1, "methods", "give at least one of chatie, chatie_loglik, single_turn")
        require(len(set(self.methods)) == len(self.methods), "methods", f"repeated method in {self.methods}")
        require(self.max_new_tokens >= 1, "max_new_tokens", f"must be >= 1, got {self.max_new_tokens}")
        require(self.temperature >= 0, "temperature", f"must be >= 0, got {self.temperature}")
        require(self.batch_inputs >= 1, "batch_inputs", f"must be >= 1, got {self.batch_inputs}")
        require(self.stage1_top_k >= 0, "stage1_top_k", f"must be >= 0 (0 = every type scored Yes), got {self.stage1_top_k}")


@dataclass
class ChatIEJobConfig:
    llm: LLMConfig = field(default_factory=LLMConfig)
    chat: ChatConfig = field(default_factory=ChatConfig)
    datasets: list[DatasetConfig] = field(default_factory=list)
    ray_num_cpus: int | None = None  # logical CPUs for a local Ray (null: all)
    run: RunConfig = field(default_factory=RunConfig)

    def validate(self) -> None:
        require(len(self.datasets) >= 1, "datasets", "give at least one dataset (name, task, path, schema)")
        names = [d.name for d in self.datasets]
        require(len(set(names)) == len(names), "datasets", f"dataset names must be unique, got {names}")
        require(not self.chat.stage1_top_k or self.uses("chatie_loglik"), "chat.stage1_top_k",
                f"limits stage I by likelihood, which no dataset runs: add chatie_loglik to chat.methods, or set 0 "
                f"(got {self.chat.stage1_top_k})")

    def uses(self, method: str) -> bool:
        """Whether any dataset runs `method` (its own methods, or chat.methods)."""
        return any(method in (self.chat.methods if d.methods is None else d.methods) for d in self.datasets)


def tokenizer_name(cfg: ChatIEJobConfig) -> str | None:
    if cfg.chat.tokenizer:
        return cfg.chat.tokenizer
    if cfg.llm.backend == "hf":
        return cfg.llm.hf.model.name
    return None


__all__ = ["ChatConfig", "ChatIEJobConfig", "ConfigError", "DatasetConfig", "find_path", "tokenizer_name"]

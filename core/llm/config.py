"""The LLM backend config (`llm:` in a job's YAML, or any section a method nests it under):
which backend, its settings, and the Ray actor pool that spreads generation."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from core.config import require
from core.models import ModelConfig

BackendName = Literal["hf", "openai", "llamacpp"]
BASE_URL_ENV = "OPENAI_BASE_URL"
API_KEY_ENV = "OPENAI_API_KEY"


@dataclass
class HFConfig:
    # name, device, dtype and attention are used; max_length and pooling are classifier knobs
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="smollm2-135m"))
    batch_size: int = 8  # prompts per forward pass
    # rows one at a time, each reusing the KV cache of what it shares with the row before (long
    # shared prompts: an item's queries, options scored after one prompt, chat turns); batch_size unused
    prefix_cache: bool = False
    seed: int = 0  # the initial weights of a random tiny model; a trained checkpoint ignores it

    def validate(self) -> None:
        require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")


@dataclass
class OpenAIConfig:
    base_url: str | None = None  # the API root, usually ending in /v1; null: $OPENAI_BASE_URL
    model: str | None = None  # null: the server's only model
    # null: $OPENAI_API_KEY, or none (a local server needs none); better kept out of YAML files
    api_key: str | None = None
    timeout_s: float = 120.0  # per request: connecting, and waiting for each read
    max_retries: int = 4  # on refused/reset connections, timeouts, 429 and 5xx
    backoff_s: float = 0.5  # the first retry waits this long, each next one twice as long
    max_backoff_s: float = 16.0
    concurrency: int = 8  # requests in flight at once
    # top_k is not in OpenAI's API (vLLM and llama.cpp take it): with top_k > 0 it is sent anyway,
    # and a hosted API may refuse the request

    def validate(self) -> None:
        if self.base_url is not None:
            require(self.base_url.startswith(("http://", "https://")), "base_url",
                    f"{self.base_url!r} is not an http(s) URL; allowed: http://host:port/v1, https://..., "
                    f"or null to read ${BASE_URL_ENV}")
        require(self.timeout_s > 0, "timeout_s", f"must be > 0, got {self.timeout_s}")
        require(self.max_retries >= 0, "max_retries", f"must be >= 0, got {self.max_retries}")
        require(self.backoff_s >= 0, "backoff_s", f"must be >= 0, got {self.backoff_s}")
        require(self.max_backoff_s >= self.backoff_s, "max_backoff_s",
                f"must be >= backoff_s={self.backoff_s}, got {self.max_backoff_s}")
        require(self.concurrency >= 1, "concurrency", f"must be >= 1, got {self.concurrency}")

    def resolved_base_url(self) -> str | None:
        return self.base_url or os.environ.get(BASE_URL_ENV) or None

    def resolved_api_key(self) -> str | None:
        return self.api_key or os.environ.get(API_KEY_ENV) or None


@dataclass
class LlamaCppConfig:
    """A llama.cpp `llama-server` this job starts and stops itself (one per pool actor), serving a
    quantized GGUF on 127.0.0.1; requests go through the openai backend's client."""

    model: str = "qwen2.5-coder-1.5b"  # a GGUF model of the registry (python -m core.models), or a .gguf path
    threads: int = 1  # CPU threads of the server (-t and -tb); under load one thread per server was safest
    parallel: int = 4  # slots (-np): requests one server decodes together (continuous batching)
    ctx: int = 4096  # context tokens in all, shared by the slots (-c): each slot gets ctx / parallel
    # the llama-server binary; null: $TAILOR_LLAMA_SERVER, else the one `make install` built into the cache
    server: str | None = None
    startup_timeout_s: float = 180.0  # loading the model, on a busy machine
    timeout_s: float = 600.0  # per request (a busy server queues requests beyond its slots)
    max_retries: int = 2
    top_logprobs: int = 20  # alternatives returned beside each scored token (checked against the score)
    extra_args: list[str] = field(default_factory=list)  # more llama-server flags, passed as they are

    def validate(self) -> None:
        require(self.threads >= 1, "threads", f"must be >= 1, got {self.threads}")
        require(self.parallel >= 1, "parallel", f"must be >= 1, got {self.parallel}")
        require(self.ctx >= 64 * self.parallel, "ctx",
                f"must be >= 64 per slot (parallel={self.parallel}), got {self.ctx}; each slot gets ctx / parallel")
        require(self.startup_timeout_s > 0, "startup_timeout_s", f"must be > 0, got {self.startup_timeout_s}")
        require(self.timeout_s > 0, "timeout_s", f"must be > 0, got {self.timeout_s}")
        require(self.max_retries >= 0, "max_retries", f"must be >= 0, got {self.max_retries}")
        require(self.top_logprobs >= 1, "top_logprobs", f"must be >= 1, got {self.top_logprobs}")


@dataclass
class PoolConfig:
    actors: int = 0  # 0: the backend runs in this process; N: N Ray actors, one model load each
    batch_size: int = 16  # prompts per actor call
    num_cpus: float = 1.0  # per actor
    num_gpus: float = 0.0  # per actor

    def validate(self) -> None:
        require(self.actors >= 0, "actors", f"must be >= 0 (0 = no pool), got {self.actors}")
        require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        require(self.num_cpus >= 0, "num_cpus", f"must be >= 0, got {self.num_cpus}")
        require(self.num_gpus >= 0, "num_gpus", f"must be >= 0, got {self.num_gpus}")


@dataclass
class LLMConfig:
    backend: BackendName = "hf"
    hf: HFConfig = field(default_factory=HFConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    llamacpp: LlamaCppConfig = field(default_factory=LlamaCppConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)

    def model_name(self) -> str:
        """The model this config runs, for reports: a registry name, an HF id, a path, or the served name."""
        if self.backend == "hf":
            return self.hf.model.name
        if self.backend == "llamacpp":
            return self.llamacpp.model
        return self.openai.model or "(the server's model)"

    def validate(self) -> None:
        if self.backend == "llamacpp":
            # before Ray starts: the model is installed and a server binary exists, or the error says
            # which make target provides them
            from core.llm.llama_server import server_binary
            from core.models import check_gguf_name

            check_gguf_name(self.llamacpp.model, key="llamacpp.model")
            server_binary(self.llamacpp.server, key="llamacpp.server")
        if self.backend == "openai":
            require(self.openai.resolved_base_url() is not None, "openai.base_url",
                    f"backend 'openai' needs a server URL: set openai.base_url (e.g. http://127.0.0.1:8000/v1) "
                    f"or ${BASE_URL_ENV}")

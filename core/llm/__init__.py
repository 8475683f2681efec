"""LLM calls, one way for every method: `build_backend(cfg.llm)` gives a Backend (`hf`, `openai`,
`llamacpp`, or any of them spread over a pool of Ray actors); `check_backend` fails a job early when
it cannot be reached."""

from __future__ import annotations

from core.llm.base import (
    Backend,
    Chat,
    HTTPStatusError,
    LLMError,
    Prompt,
    SamplingParams,
    ScoreUnsupportedError,
    TokenBackend,
    UnreachableError,
    generate_and_score,
    rejected_request,
)
from core.llm.config import HFConfig, LlamaCppConfig, LLMConfig, OpenAIConfig, PoolConfig
from core.llm.hf import HFBackend
from core.llm.openai import OpenAIBackend


def local_backend(cfg: LLMConfig, key: str = "llm") -> Backend:
    """cfg's backend in this process, whatever cfg.pool says. `key` is where cfg sits in the job's
    config, so errors name the field to fix (e.g. 'teacher' -> 'teacher.openai.base_url')."""
    if cfg.backend == "hf":
        return HFBackend.from_config(cfg.hf.model, batch_size=cfg.hf.batch_size, seed=cfg.hf.seed,
                                     prefix_cache=cfg.hf.prefix_cache)
    if cfg.backend == "llamacpp":
        # a llama-server subprocess of this process (one per pool actor), stopped when it ends
        from core.llm.llamacpp import LlamaCppBackend

        return LlamaCppBackend.from_config(cfg.llamacpp, config_key=f"{key}.llamacpp")
    return OpenAIBackend.from_config(cfg.openai, config_key=f"{key}.openai")


def build_backend(cfg: LLMConfig, key: str = "llm") -> Backend:
    """cfg's backend: in this process with pool.actors 0, else an LLMPool (Ray must be started)."""
    if cfg.pool.actors > 0:
        from core.llm.pool import LLMPool

        return LLMPool(cfg, key)
    return local_backend(cfg, key)


def check_backend(cfg: LLMConfig, key: str = "llm") -> None:
    """Run before Ray or Ray Tune starts: an openai server that does not answer, refuses the key or does
    not serve the model raises ConfigError naming the key. An hf model was checked by cfg.validate()."""
    if cfg.backend == "openai":
        OpenAIBackend.from_config(cfg.openai, config_key=f"{key}.openai").check()


__all__ = [
    "Backend", "Chat", "HFBackend", "HFConfig", "HTTPStatusError", "LLMConfig", "LLMError", "LlamaCppConfig",
    "OpenAIBackend",
    "OpenAIConfig", "PoolConfig", "Prompt", "SamplingParams", "ScoreUnsupportedError", "TokenBackend",
    "UnreachableError", "rejected_request", "build_backend", "check_backend", "generate_and_score", "local_backend",
]

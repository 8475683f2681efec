"""The `llm:` config: what it accepts, the keys its errors name, and which backend it builds."""

import pytest

from core.config import ConfigError, from_dict
from core.llm import (
    HFBackend,
    LLMConfig,
    OpenAIBackend,
    build_backend,
    check_backend,
    local_backend,
)


def _key_of(data: dict) -> str:
    with pytest.raises(ConfigError) as err:
        from_dict(LLMConfig, data)
    return err.value.key


def test_bad_values_name_their_key(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert _key_of({"backend": "vllm"}) == "backend"
    assert _key_of({"backend": "openai"}) == "openai.base_url"  # no URL in the config nor in the environment
    assert _key_of({"openai": {"base_url": "127.0.0.1:8000/v1"}}) == "openai.base_url"
    assert _key_of({"openai": {"timeout_s": 0}}) == "openai.timeout_s"
    assert _key_of({"openai": {"concurrency": 0}}) == "openai.concurrency"
    assert _key_of({"openai": {"backoff_s": 2.0, "max_backoff_s": 1.0}}) == "openai.max_backoff_s"
    assert _key_of({"pool": {"actors": -1}}) == "pool.actors"
    assert _key_of({"pool": {"batch_size": 0}}) == "pool.batch_size"
    assert _key_of({"hf": {"batch_size": 0}}) == "hf.batch_size"
    assert _key_of({"hf": {"model": {"name": "no such model"}}}) == "hf.model.name"
    assert _key_of({"hf": {"modle": {}}}) == "hf.modle"


def test_the_url_and_key_may_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    cfg = from_dict(LLMConfig, {"backend": "openai", "openai": {"model": "m"}})
    backend = local_backend(cfg, key="teacher")
    assert isinstance(backend, OpenAIBackend)
    assert (backend.base_url, backend.model, backend.api_key) == ("http://127.0.0.1:9/v1", "m", "from-env")
    assert backend.config_key == "teacher.openai"
    # the config wins over the environment
    cfg = from_dict(LLMConfig, {"backend": "openai", "openai": {"base_url": "https://example.org/v1/", "api_key": "k"}})
    backend = local_backend(cfg)
    assert (backend.base_url, backend.api_key) == ("https://example.org/v1", "k")
    assert backend.root_url == "https://example.org"  # where vLLM serves /tokenize


def test_hf_builds_in_process_without_a_pool():
    cfg = from_dict(LLMConfig, {"hf": {"model": {"name": "tiny-llama", "device": "cpu"}, "batch_size": 5}})
    backend = build_backend(cfg)
    assert isinstance(backend, HFBackend) and backend.batch_size == 5 and backend.name == "hf"
    check_backend(cfg)  # nothing to reach: returns
    assert LLMConfig().hf.model.name == "smollm2-135m"  # the issue's default teacher

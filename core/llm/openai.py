"""The `openai` backend: a client for any OpenAI-compatible HTTP server (vLLM, llama.cpp's server,
a hosted API, or core.llm.server), with retries and backoff, a timeout and a concurrency limit.

Chats go to /chat/completions and plain-string prompts to /completions, one request per prompt
with the prompt's seed. score() needs prompt log-probs, which only some servers give (vLLM's
/tokenize plus echo on /completions); elsewhere it raises ScoreUnsupportedError.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from core.config import ConfigError
from core.llm.base import (
    HTTPStatusError,
    LLMError,
    Prompt,
    SamplingParams,
    ScoreUnsupportedError,
    UnreachableError,
    check_lengths,
    continues_last_message,
    is_chat,
)
from core.llm.config import API_KEY_ENV, BASE_URL_ENV, OpenAIConfig

T = TypeVar("T")
R = TypeVar("R")


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def strip_prefill(content: str, prefill: str | None) -> str:
    """The continuation of a prefilled assistant message, as the hf backend returns it.

    Servers disagree: llama-server answers with the prefill followed by its continuation, vLLM
    (and core.llm.server) with the continuation alone. Without this, a caller that puts the
    prefill back ("Text:" + reply) got it twice from llama-server, and GOLD parsed no sample."""
    if prefill and isinstance(prefill, str) and content.startswith(prefill):
        return content[len(prefill):]
    return content


class OpenAIBackend:
    name = "openai"

    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None, *,
                 timeout_s: float = 120.0, max_retries: int = 4, backoff_s: float = 0.5, max_backoff_s: float = 16.0,
                 concurrency: int = 8, config_key: str = "llm.openai"):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.concurrency = concurrency
        # where this backend's settings live in the job's config, for the errors that name them
        self.config_key = config_key
        self._checked = False

    @classmethod
    def from_config(cls, cfg: OpenAIConfig, config_key: str = "llm.openai") -> OpenAIBackend:
        """The URL and key come from the config, else from $OPENAI_BASE_URL / $OPENAI_API_KEY of this process."""
        url = cfg.resolved_base_url()
        if url is None:
            raise ConfigError(f"{config_key}.base_url", f"no server URL: set it or ${BASE_URL_ENV}")
        return cls(url, cfg.model, cfg.resolved_api_key(), timeout_s=cfg.timeout_s, max_retries=cfg.max_retries,
                   backoff_s=cfg.backoff_s, max_backoff_s=cfg.max_backoff_s, concurrency=cfg.concurrency,
                   config_key=config_key)

    # --- HTTP ------------------------------------------------------------------------------

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        wait = self.backoff_s * 2 ** attempt
        if retry_after is not None:
            try:
                wait = max(wait, float(retry_after))  # the server knows when it can take more
            except ValueError:
                pass  # an HTTP date: our own schedule will do
        return min(wait, self.max_backoff_s)

    def request(self, method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One JSON call, retried with exponential backoff on no answer, 429 and 5xx."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        failure, unanswered = "", False
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                req = urllib.request.Request(url, data=data, headers=headers, method=method)
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    raw = resp.read()
                try:
                    return json.loads(raw)
                except json.JSONDecodeError:
                    raise LLMError(f"{self.name} backend: {method} {url} answered with non-JSON: "
                                   f"{raw[:200]!r}") from None
            except urllib.error.HTTPError as err:
                detail = err.read()[:500].decode(errors="replace")
                failure, unanswered = f"HTTP {err.code}: {detail}", False
                if not _retryable(err.code):
                    raise HTTPStatusError(f"{self.name} backend: {method} {url} answered {failure}", err.code) from None
                retry_after = err.headers.get("Retry-After")
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as err:
                reason = getattr(err, "reason", err)
                if isinstance(reason, TimeoutError):
                    reason = f"timed out after {self.timeout_s:g} s"
                failure, unanswered = f"{type(err).__name__}: {reason}", True
            if attempt < self.max_retries:
                time.sleep(self._backoff(attempt, retry_after))
        message = f"{self.name} backend: {method} {url} failed after {self.max_retries + 1} attempt(s); last: {failure}"
        raise (UnreachableError if unanswered else LLMError)(message)

    def _map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if len(items) <= 1 or self.concurrency == 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    @property
    def root_url(self) -> str:
        # vLLM serves /tokenize beside /v1, not under it
        return self.base_url.removesuffix("/v1")

    # --- health ----------------------------------------------------------------------------

    def check(self) -> None:
        """GET /models: the server answers, the key is accepted and the model is served. Resolves
        a null model to the server's only one. Raises ConfigError naming the key to fix."""
        key, url = self.config_key, f"{self.base_url}/models"
        try:
            listing = self.request("GET", url)
        except UnreachableError as err:
            raise ConfigError(f"{key}.base_url", f"cannot reach the openai backend at {self.base_url}: {err}. Start "
                              f"the server, or set {key}.base_url (or ${BASE_URL_ENV}) to one that runs") from None
        except HTTPStatusError as err:
            if err.status in (401, 403):
                raise ConfigError(f"{key}.api_key", f"the server at {self.base_url} refused the API key "
                                  f"(HTTP {err.status}); set {key}.api_key or ${API_KEY_ENV}") from None
            raise ConfigError(f"{key}.base_url", f"{self.base_url} is not an OpenAI-compatible API root "
                              f"({err}); it usually ends in /v1") from None
        except LLMError as err:
            raise ConfigError(f"{key}.base_url", f"the openai backend at {self.base_url} is failing: {err}") from None
        served = [m.get("id") for m in listing.get("data", []) if isinstance(m, dict)]
        if self.model is None:
            if len(served) != 1:
                raise ConfigError(f"{key}.model", f"not set, and {self.base_url} serves {len(served)} models; "
                                  f"allowed: {', '.join(map(str, served)) or '(none listed)'}")
            self.model = served[0]
        elif served and self.model not in served:
            raise ConfigError(f"{key}.model", f"{self.model!r} is not served at {self.base_url}; "
                              f"allowed: {', '.join(map(str, served))}")
        self._checked = True

    def _model_name(self) -> str:
        if not self._checked and self.model is None:
            self.check()
        return self.model

    # --- generation ------------------------------------------------------------------------

    def _sampling_body(self, params: SamplingParams, seed: int) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self._model_name(), "max_tokens": params.max_new_tokens,
                                "temperature": params.temperature, "top_p": params.top_p, "seed": int(seed), "n": 1}
        if params.top_k > 0:
            body["top_k"] = params.top_k
        return body

    def _choice(self, url: str, answer: dict[str, Any]) -> dict[str, Any]:
        choices = answer.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise LLMError(f"{self.name} backend: {url} answered without choices: {str(answer)[:300]}")
        return choices[0]

    def _generate_one(self, item: tuple[Prompt, int], params: SamplingParams) -> str:
        prompt, seed = item
        body = self._sampling_body(params, seed)
        if is_chat(prompt):
            url = f"{self.base_url}/chat/completions"
            body["messages"] = list(prompt)
            cont = continues_last_message(prompt)
            if cont:
                # vLLM's names for continuing a prefilled assistant message instead of answering it
                body.update(add_generation_prompt=False, continue_final_message=True)
            message = self._choice(url, self.request("POST", url, body)).get("message") or {}
            return strip_prefill(message.get("content") or "", prompt[-1].get("content") if cont else None)
        url = f"{self.base_url}/completions"
        body["prompt"] = prompt
        return self._choice(url, self.request("POST", url, body)).get("text") or ""

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams, seeds: Sequence[int]) -> list[str]:
        check_lengths("seeds", seeds, prompts)
        self._model_name()  # resolved once, before the threads start
        return self._map(lambda item: self._generate_one(item, params), list(zip(prompts, seeds)))

    # --- scoring ---------------------------------------------------------------------------

    def _unsupported(self, what: str, err: Exception) -> ScoreUnsupportedError:
        return ScoreUnsupportedError(
            f"the {self.name} backend at {self.base_url} cannot score: {what} ({err}). score() needs a server "
            "with vLLM's /tokenize and prompt log-probs (echo) on /completions; a hosted chat API has neither")

    def _tokenize(self, body: dict[str, Any]) -> list[int]:
        url = f"{self.root_url}/tokenize"
        try:
            tokens = self.request("POST", url, {"model": self._model_name(), **body}).get("tokens")
        except HTTPStatusError as err:
            raise self._unsupported("POST /tokenize failed", err) from None
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise self._unsupported("/tokenize gave no token ids", ValueError(str(tokens)[:200]))
        return tokens

    def _prompt_ids(self, prompt: Prompt) -> list[int]:
        if is_chat(prompt):
            cont = continues_last_message(prompt)
            return self._tokenize({"messages": list(prompt), "add_generation_prompt": not cont,
                                   "continue_final_message": cont, "add_special_tokens": False})
        return self._tokenize({"prompt": prompt, "add_special_tokens": True})

    def _sequence_logprob(self, ids: list[int], start: int) -> float:
        """sum of log p(ids[t] | ids[:t]) for t >= start, from the echoed prompt log-probs."""
        url = f"{self.base_url}/completions"
        # max_tokens 1: vLLM refuses 0; the one generated token is ignored
        body = {"model": self._model_name(), "prompt": ids, "echo": True, "logprobs": 1, "max_tokens": 1,
                "temperature": 0.0}
        try:
            logprobs = (self._choice(url, self.request("POST", url, body)).get("logprobs") or {}).get("token_logprobs")
        except HTTPStatusError as err:
            raise self._unsupported("echo with logprobs on /completions failed", err) from None
        wanted = logprobs[start:len(ids)] if isinstance(logprobs, list) else []
        if len(wanted) != len(ids) - start or any(v is None for v in wanted):
            raise self._unsupported("/completions did not echo the prompt's log-probs",
                                    ValueError(f"got {str(logprobs)[:200]}"))
        return float(sum(wanted))

    def score(self, prompts: Sequence[Prompt], continuations: Sequence[str]) -> list[float]:
        check_lengths("continuations", continuations, prompts)
        # a prompt is often scored against every label: tokenize each distinct text once
        unique_prompts = {json.dumps(p): p for p in prompts}
        unique_conts = sorted(set(continuations))
        p_ids = dict(zip(unique_prompts, self._map(self._prompt_ids, list(unique_prompts.values()))))
        c_ids = dict(zip(unique_conts, self._map(
            lambda c: self._tokenize({"prompt": c, "add_special_tokens": False}), unique_conts)))
        rows = []
        for prompt, cont in zip(prompts, continuations):
            p, c = p_ids[json.dumps(prompt)], c_ids[cont]
            if not c:
                raise ValueError(f"continuation {cont!r} has no tokens")
            if not p:
                raise ValueError(f"prompt {prompt!r} has no tokens: nothing to condition the continuation on")
            rows.append((p + c, len(p)))
        return self._map(lambda row: self._sequence_logprob(*row), rows)

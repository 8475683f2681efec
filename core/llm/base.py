"""What every LLM backend shares: the prompt types, sampling parameters, the Backend protocol
and the errors a backend raises."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

# A chat is a list of {"role": ..., "content": ...} messages; one that ends with an assistant
# message asks the backend to continue that message (a prefilled answer). A plain string is a
# raw completion prompt, sent as is.
Chat = list[dict[str, str]]
Prompt = Chat | str


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 64
    temperature: float = 1.0  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0


class Backend(Protocol):
    name: str

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams, seeds: Sequence[int]) -> list[str]:
        """One reply per prompt; prompt i samples from seeds[i], whatever else shares its batch."""
        ...

    def score(self, prompts: Sequence[Prompt], continuations: Sequence[str]) -> list[float]:
        """log p(continuation_i | prompt_i), summed over the continuation's tokens."""
        ...

    def check(self) -> None:
        """Raise ConfigError, naming the config key, when the backend cannot serve requests."""
        ...


@runtime_checkable
class TokenBackend(Protocol):
    """A backend that also works on token ids: what an OpenAI-compatible server needs for
    /tokenize, token-id prompts and prompt log-probs (echo)."""

    def encode_prompt(self, prompt: Prompt) -> list[int]: ...

    def encode_continuation(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def generate_ids(self, rows: Sequence[Sequence[int]], params: SamplingParams,
                     seeds: Sequence[int]) -> list[list[int]]: ...

    def token_logprobs(self, ids: Sequence[int], top: int = 0) -> tuple[list[float], list[dict[int, float]]]: ...


def is_chat(prompt: Prompt) -> bool:
    return not isinstance(prompt, str)


def continues_last_message(prompt: Prompt) -> bool:
    """A chat ending with an assistant message is continued rather than answered."""
    return is_chat(prompt) and bool(prompt) and prompt[-1]["role"] == "assistant"


def check_lengths(what: str, got: Sequence, prompts: Sequence) -> None:
    if len(got) != len(prompts):
        raise ValueError(f"{len(got)} {what} for {len(prompts)} prompts")


class LLMError(RuntimeError):
    """A backend call failed: names the backend, where it was sent and what came back."""


class HTTPStatusError(LLMError):
    """An HTTP backend answered with an error status that retrying does not fix."""

    def __init__(self, message: str, status: int):
        self.status = status
        super().__init__(message)


class UnreachableError(LLMError):
    """An HTTP backend gave no answer (refused, reset or timed out) on every attempt."""


class ScoreUnsupportedError(LLMError, NotImplementedError):
    """The backend cannot give the log-probabilities that score() needs."""

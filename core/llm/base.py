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


def batched_generate_and_score(backend: Backend, prompts: Sequence[Prompt], params: SamplingParams,
                               seeds: Sequence[int], options: Sequence[Sequence[str]]) -> list[tuple[str, list[float]]]:
    """generate_and_score as one batched generate, then one batched score."""
    texts = backend.generate(prompts, params, seeds)
    flat_p = [p for p, opts in zip(prompts, options) for _ in opts]
    flat = backend.score(flat_p, [o for opts in options for o in opts]) if flat_p else []
    out, at = [], 0
    for text, opts in zip(texts, options):
        out.append((text, [float(x) for x in flat[at:at + len(opts)]]))
        at += len(opts)
    return out


def prompt_by_prompt(backend: Backend, prompts: Sequence[Prompt], params: SamplingParams, seeds: Sequence[int],
                     options: Sequence[Sequence[str]]) -> list[tuple[str, list[float]]]:
    """generate_and_score one prompt at a time: its reply, then its options."""
    return [batched_generate_and_score(backend, [p], params, [s], [opts])[0]
            for p, s, opts in zip(prompts, seeds, options)]


def generate_and_score(backend: Backend, prompts: Sequence[Prompt], params: SamplingParams, seeds: Sequence[int],
                       options: Sequence[Sequence[str]]) -> list[tuple[str, list[float]]]:
    """For each prompt, its reply and log p(option | prompt) for each of its options (none: []).

    A backend that keeps the KV cache of the last sequence it ran (a llama-server slot, the hf
    prefix cache) does this prompt by prompt through its own `generate_and_score`, so the options
    are scored on the prompt it has just read rather than after every other prompt of the batch
    has pushed it out. Any other backend gets one batched generate, then one batched score."""
    check_lengths("seeds", seeds, prompts)
    check_lengths("option lists", options, prompts)
    own = getattr(backend, "generate_and_score", None)
    if own is not None:
        return own(prompts, params, seeds, options)
    return batched_generate_and_score(backend, prompts, params, seeds, options)


class LLMError(RuntimeError):
    """A backend call failed: names the backend, where it was sent and what came back."""


class HTTPStatusError(LLMError):
    """An HTTP backend answered with an error status that retrying does not fix."""

    def __init__(self, message: str, status: int):
        self.status = status
        super().__init__(message)

    def __reduce__(self):
        # pickled with its status, so that the error an actor raises arrives whole through Ray
        return type(self), (str(self), self.status)


def rejected_request(err: BaseException) -> bool:
    """The backend refused this one request for its content (HTTP 400, 413 or 422: a prompt longer
    than the context, say), which asking again does not fix and other requests need not share. A
    failure that came back through a Ray actor carries the backend's error as `cause`."""
    err = getattr(err, "cause", None) or err
    return isinstance(err, HTTPStatusError) and err.status in (400, 413, 422)


class UnreachableError(LLMError):
    """An HTTP backend gave no answer (refused, reset or timed out) on every attempt."""


class ScoreUnsupportedError(LLMError, NotImplementedError):
    """The backend cannot give the log-probabilities that score() needs."""

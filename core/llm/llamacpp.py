"""The `llamacpp` backend: a quantized GGUF served by a llama-server this backend starts (and stops)
itself, reached through the openai backend's client.

Generation goes to /v1/chat/completions or /v1/completions exactly as with the `openai` backend.
Scoring: llama-server gives no prompt log-probs (it ignores `echo`), only next-token log-probs
(`top_logprobs`). So log p(continuation | prompt) is read one token at a time: for the t-th
continuation token, prompt + continuation[:t] goes in as token ids and that token is forced as the
next one (a logit bias, which llama.cpp applies in the sampler chain after the log-probs are taken
from the raw logits); the reply's log-prob for the generated token is log p(token | context) over
the whole vocabulary. Where the token is also among the `top_logprobs` alternatives the two values
must agree, which catches a shifted or mis-tokenized score.

One call answers every token wanted after the same context: the forced token exactly, the others
from its `top_logprobs` (the same softmax), and only a token outside them costs a call of its own.
So the labels of one prompt ("A"/"B", "No"/"Yes") cost one call, not one each, and labels that
share leading tokens share those calls (`plan_contexts`). llama-server reuses the prompt's KV
cache between the calls of one prompt, which go in prefix order.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from typing import Any

from core.llm.base import (
    LLMError,
    Prompt,
    SamplingParams,
    check_lengths,
    continues_last_message,
    is_chat,
    prompt_by_prompt,
)
from core.llm.config import LlamaCppConfig
from core.llm.llama_server import LlamaServer, server_binary
from core.llm.openai import OpenAIBackend

FORCE_BIAS = 1000.0  # added to the forced token's logit: no other token can win the greedy pick
TOLERANCE = 1e-3  # the forced token's log-prob against its top_logprobs entry (both float32 softmax)


def plan_contexts(rows: Sequence[tuple[Sequence[int], Sequence[int]]]) -> dict[tuple[int, ...], list[int]]:
    """Every distinct context whose next-token log-prob some row needs, with the tokens wanted
    after it (first-seen order), in sorted order so that calls on one prompt run prefix after prefix.
    Row (p, c) needs c[t] after p + c[:t] for each t."""
    wanted: dict[tuple[int, ...], list[int]] = {}
    for p, c in rows:
        for t in range(len(c)):
            tokens = wanted.setdefault(tuple(p) + tuple(c[:t]), [])
            if c[t] not in tokens:
                tokens.append(c[t])
    return {ctx: wanted[ctx] for ctx in sorted(wanted)}


class LlamaCppBackend:
    name = "llamacpp"

    def __init__(self, server: LlamaServer, *, timeout_s: float = 600.0, max_retries: int = 2,
                 top_logprobs: int = 20, config_key: str = "llm.llamacpp"):
        self.server = server.start()
        self.client = OpenAIBackend(f"{server.url}/v1", model=server.alias, timeout_s=timeout_s,
                                    max_retries=max_retries, concurrency=server.parallel, config_key=config_key)
        self.top_logprobs = top_logprobs
        self.config_key = config_key
        self.calls = 0  # scoring calls sent to the server (what plan_contexts saves is counted here)
        self._calls_lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: LlamaCppConfig, config_key: str = "llm.llamacpp") -> LlamaCppBackend:
        from core.models import gguf_path

        path = gguf_path(cfg.model, key=f"{config_key}.model")
        binary = server_binary(cfg.server, key=f"{config_key}.server")
        alias = cfg.model if "/" not in cfg.model else path.stem
        server = LlamaServer(path, binary, threads=cfg.threads, parallel=cfg.parallel, ctx=cfg.ctx, alias=alias,
                             startup_timeout_s=cfg.startup_timeout_s, extra_args=cfg.extra_args)
        return cls(server, timeout_s=cfg.timeout_s, max_retries=cfg.max_retries, top_logprobs=cfg.top_logprobs,
                   config_key=config_key)

    # --- lifecycle -------------------------------------------------------------------------

    def check(self) -> None:
        if not self.server.alive():
            raise LLMError(f"the llama-server of the {self.name} backend is not running: {self.server.log_tail()}")
        self.client.check()

    def close(self) -> None:
        self.server.stop()

    def __enter__(self) -> LlamaCppBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- generation ------------------------------------------------------------------------

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams, seeds: Sequence[int]) -> list[str]:
        try:
            return self.client.generate(prompts, params, seeds)
        except LLMError:
            self._raise_if_dead()
            raise

    def generate_and_score(self, prompts: Sequence[Prompt], params: SamplingParams, seeds: Sequence[int],
                           options: Sequence[Sequence[str]]) -> list[tuple[str, list[float]]]:
        """Prompt by prompt (up to `parallel` at once): a prompt's options are scored right after
        its reply, while the server's slot still holds the prompt's KV cache."""
        rows = list(zip(prompts, seeds, options))
        return self.client._map(lambda r: prompt_by_prompt(self, [r[0]], params, [r[1]], [r[2]])[0], rows)

    def _raise_if_dead(self) -> None:
        if not self.server.alive():
            raise LLMError(f"llama-server (model {self.server.model.name}) died: {self.server.log_tail()}")

    # --- tokens ----------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.client.request("POST", f"{self.server.url}{path}", body)

    def tokenize(self, text: str, add_special: bool) -> list[int]:
        tokens = self._post("/tokenize", {"content": text, "add_special": add_special, "parse_special": True})
        return [int(t) for t in tokens["tokens"]]

    def render(self, prompt: Prompt) -> str:
        """The prompt text the server's chat template makes (what /v1/chat/completions would feed the model)."""
        if not is_chat(prompt):
            return prompt
        cont = continues_last_message(prompt)
        body = {"messages": list(prompt), "add_generation_prompt": not cont}
        if cont:
            body["continue_final_message"] = True
        return self._post("/apply-template", body)["prompt"]

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        # a chat template writes its own special tokens; plain text gets the model's (BOS, if it has one)
        return self.tokenize(self.render(prompt), add_special=not is_chat(prompt))

    def encode_continuation(self, text: str) -> list[int]:
        return self.tokenize(text, add_special=False)

    # --- scoring ---------------------------------------------------------------------------

    def next_token_logprob(self, ids: list[int], token: int) -> float:
        """log p(token | ids) over the whole vocabulary, from the server's next-token log-probs."""
        return self._forced(ids, token)[0]

    def next_token_logprobs(self, ids: Sequence[int], tokens: Sequence[int]) -> dict[int, float]:
        """log p(token | ids) for each of `tokens`: one forced call, plus one for each other token
        that is not among that call's `top_logprobs`."""
        lp, top = self._forced(list(ids), tokens[0])
        out = {tokens[0]: lp}
        for tok in tokens[1:]:
            out[tok] = top[tok] if tok in top else self._forced(list(ids), tok)[0]
        return out

    def _forced(self, ids: list[int], token: int) -> tuple[float, dict[int, float]]:
        """The forced token's log-prob and the reply's top_logprobs alternatives {id: log-prob}."""
        with self._calls_lock:
            self.calls += 1
        body = {"prompt": ids, "n_predict": 1, "temperature": 0.0, "n_probs": self.top_logprobs,
                "logit_bias": [[token, FORCE_BIAS]], "cache_prompt": True, "seed": 0}
        answer = self._post("/completion", body)
        probs = answer.get("completion_probabilities")
        if not isinstance(probs, list) or not probs:
            raise LLMError(f"llama-server gave no completion_probabilities: {str(answer)[:300]}")
        first = probs[0]
        if first.get("id") != token:
            raise LLMError(f"llama-server generated token {first.get('id')} where {token} was forced; "
                           "its logit_bias did not apply, so the score would be wrong")
        lp = float(first["logprob"])
        for alt in first.get("top_logprobs") or []:
            if alt.get("id") == token and abs(float(alt["logprob"]) - lp) > TOLERANCE:
                raise LLMError(f"token {token}: log-prob {lp} of the generated token differs from its "
                               f"top_logprobs entry {alt['logprob']}")
        if not math.isfinite(lp):
            raise LLMError(f"token {token}: log-prob {lp} is not finite")
        top = {int(alt["id"]): float(alt["logprob"]) for alt in first.get("top_logprobs") or []}
        return lp, top

    def score(self, prompts: Sequence[Prompt], continuations: Sequence[str]) -> list[float]:
        check_lengths("continuations", continuations, prompts)
        unique_prompts = {json.dumps(p): p for p in prompts}
        unique_conts = sorted(set(continuations))
        p_ids = dict(zip(unique_prompts, self.client._map(self.encode_prompt, list(unique_prompts.values()))))
        c_ids = dict(zip(unique_conts, self.client._map(self.encode_continuation, unique_conts)))
        rows = []
        for prompt, cont in zip(prompts, continuations):
            p, c = p_ids[json.dumps(prompt)], c_ids[cont]
            if not c:
                raise ValueError(f"continuation {cont!r} has no tokens")
            if not p:
                raise ValueError(f"prompt {prompt!r} has no tokens: nothing to condition the continuation on")
            rows.append((p, c))
        plan = plan_contexts(rows)
        try:
            answers = self.client._map(lambda item: self.next_token_logprobs(*item), list(plan.items()))
        except LLMError:
            self._raise_if_dead()
            raise
        logprob = dict(zip(plan, answers))
        return [sum(logprob[tuple(p) + tuple(c[:t])][c[t]] for t in range(len(c))) for p, c in rows]

"""Who answers the evaluators' queries: a core.llm backend (local, pooled on Ray, or a server), or one
of three scripted judges that are test instruments, not models: an oracle that answers from the
annotations (must score 1.0), a constant judge that always gives the first option ("consistent",
"A", "No"; 0.5 on every balanced evaluator) and a seeded random judge (about 0.5)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from core.llm import Backend, SamplingParams, ScoreUnsupportedError, generate_and_score
from core.seeding import derive_seed
from evals.data import Item
from evals.evaluators import Query
from evals.prompts import as_prompt

SCRIPTED = ("oracle", "constant", "random")
# What a scripted judge's chosen option gets as a log-probability; the others get a very low one
# (finite, so answer files stay plain JSON).
_CHOSEN, _OTHER = 0.0, -1e9


class LLMResponder:
    """Queries sent to a Backend: the same sampling for every evaluator except the length limit
    (UHGEval's: temperature 0.1, top-p 0.9, top-k 5), one seed per query."""

    scripted = False

    def __init__(self, name: str, backend: Backend, prompt_format: str = "chat", system_message: str = "",
                 temperature: float = 0.1, top_p: float = 0.9, top_k: int = 5, likelihood: bool = True):
        self.name = name
        self.backend = backend
        self.prompt_format = prompt_format
        self.system_message = system_message
        self.sampling = dict(temperature=temperature, top_p=top_p, top_k=top_k)
        self.likelihood = likelihood  # False once the backend has said it gives no log-probabilities

    def prompt(self, q: Query):
        return as_prompt(q.text, self.prompt_format, self.system_message)

    def generate(self, jobs: Sequence[tuple[Item, Query]], seeds: Sequence[int]) -> list[str]:
        out: list[str | None] = [None] * len(jobs)
        for limit in sorted({q.max_new_tokens for _, q in jobs}):
            idx = [i for i, (_, q) in enumerate(jobs) if q.max_new_tokens == limit]
            texts = self.backend.generate([self.prompt(jobs[i][1]) for i in idx],
                                          SamplingParams(max_new_tokens=limit, **self.sampling),
                                          [seeds[i] for i in idx])
            for i, t in zip(idx, texts):
                out[i] = t
        return out  # type: ignore[return-value]

    def answer(self, jobs: Sequence[tuple[Item, Query]],
               seeds: Sequence[int]) -> list[tuple[str, list[float] | None]]:
        """Each query's reply and, while the backend gives log-probabilities, log p(option | query)
        for its options (None once it has said it gives none). Both in one backend call
        (core.llm.generate_and_score), so a backend that caches a prompt scores it right after
        reading it."""
        if not self.likelihood:
            return [(t, None) for t in self.generate(jobs, seeds)]
        out: list = [None] * len(jobs)
        for limit in sorted({q.max_new_tokens for _, q in jobs}):
            idx = [i for i, (_, q) in enumerate(jobs) if q.max_new_tokens == limit]
            try:
                got = generate_and_score(self.backend, [self.prompt(jobs[i][1]) for i in idx],
                                         SamplingParams(max_new_tokens=limit, **self.sampling),
                                         [seeds[i] for i in idx], [list(jobs[i][1].choices) for i in idx])
            except (ScoreUnsupportedError, NotImplementedError):
                self.likelihood = False
                return self.answer(jobs, seeds)
            for i, (text, scores) in zip(idx, got):
                out[i] = (text, scores)
        return out

    def close(self) -> None:
        # a pool stops its actors (and their servers); a llamacpp backend in this process its server
        stop = getattr(self.backend, "shutdown", None) or getattr(self.backend, "close", None)
        if stop is not None:
            stop()


class ScriptedJudge:
    """A test instrument. Its likelihoods put all the mass on the option its text names."""

    scripted = True
    likelihood = True

    def __init__(self, kind: str, seed: int = 0):
        if kind not in SCRIPTED:
            raise ValueError(f"unknown scripted judge {kind!r}; allowed: {', '.join(SCRIPTED)}")
        self.kind = kind
        self.name = kind
        self.seed = seed

    def _pick(self, item: Item, q: Query) -> int:
        if self.kind == "oracle":
            return q.truth
        if self.kind == "constant":
            return 0
        return random.Random(derive_seed(self.seed, "random-judge", item.id, q.key)).randrange(len(q.choices))

    def _free_text(self, item: Item, q: Query) -> str:
        if self.kind == "oracle":
            return q.reference
        if self.kind == "constant":
            return "新华社记者报道了这一消息。"
        chars = list(q.reference)
        random.Random(derive_seed(self.seed, "random-judge", item.id, q.key)).shuffle(chars)
        return "".join(chars)

    def generate(self, jobs: Sequence[tuple[Item, Query]], seeds: Sequence[int]) -> list[str]:
        return [q.choices[self._pick(it, q)] if q.choices else self._free_text(it, q) for it, q in jobs]

    def answer(self, jobs: Sequence[tuple[Item, Query]], seeds: Sequence[int]) -> list[tuple[str, list[float]]]:
        return list(zip(self.generate(jobs, seeds), self.likelihoods(jobs)))

    def likelihoods(self, jobs: Sequence[tuple[Item, Query]]) -> list[list[float]]:
        out = []
        for it, q in jobs:
            k = self._pick(it, q)
            out.append([_CHOSEN if i == k else _OTHER for i in range(len(q.choices))])
        return out

    def close(self) -> None:
        pass


__all__ = ["LLMResponder", "SCRIPTED", "ScriptedJudge"]

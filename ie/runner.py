"""The driver: advances the dialogues of many inputs together, so each backend call carries one
turn of every active input (an LLMPool spreads that batch over its Ray actors), and looks every
request up in the answer cache first."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from core.llm import SamplingParams, rejected_request
from core.seeding import derive_seed
from ie.cache import AnswerCache, request_key
from ie.chat import Generate, Outcome, Score, dialogue_for
from ie.data import Example
from ie.schema import Schema
from ie.tokens import TokenCounter


@dataclass
class RunStats:
    inputs: int = 0  # inputs with a dialogue
    skipped_empty: int = 0  # inputs whose text is empty: no dialogue, no predictions
    answers: int = 0  # generated answers (turns)
    scored: int = 0  # (prompt, continuation) pairs scored by likelihood
    reused: int = 0  # answers and scores taken from the cache instead of the backend
    inputs_reused: int = 0  # inputs whose every answer came from the cache
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0  # wall time of this method on this dataset (cache reads included)
    status: dict[str, int] = field(default_factory=dict)  # parse status of every answer
    errors: int = 0  # requests the backend rejected even alone: their dialogues end there, nothing is cached
    error_messages: list[str] = field(default_factory=list)  # the first few, for the log and results.json

    @property
    def asked(self) -> int:
        return self.answers + self.scored - self.reused

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["status"] = dict(self.status)
        d["error_messages"] = list(self.error_messages)
        return d


MAX_MESSAGES = 5


def _isolated(call, requests: list, stats: RunStats) -> list:
    """call(requests) as one batch; if the backend rejects the batch for a request's content (a
    prompt longer than the server's context, say), each request alone, so that request costs only
    its own input, which gets None. Any other failure (an unreachable backend) stops the run: the
    backends retry transport failures themselves."""
    try:
        return list(call(requests))
    except Exception as err:
        if not rejected_request(err):
            raise
        if len(requests) > 1:
            return [x for r in requests for x in _isolated(call, [r], stats)]
        stats.errors += 1
        if len(stats.error_messages) < MAX_MESSAGES:
            stats.error_messages.append(f"{type(err).__name__}: {err}"[:500])
        return [None]


def run_method(examples: list[Example], method: str, schema: Schema, backend, cache: AnswerCache,
               counter: TokenCounter, *, max_new_tokens: int = 128, temperature: float = 0.0, seed: int = 0,
               batch_inputs: int = 16, system: str | None = None, stage1_top_k: int = 0,
               progress=None) -> tuple[dict[str, Outcome], RunStats]:
    """Run `method` on every non-empty example; returns the outcomes by id and the counts."""
    from ie import prompts

    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature)
    extra = [max_new_tokens, temperature, seed]
    stats = RunStats()
    outcomes: dict[str, Outcome] = {}
    todo = []
    for ex in examples:
        if ex.text.strip():
            todo.append(ex)
        else:
            stats.skipped_empty += 1
    stats.inputs = len(todo)
    start = time.perf_counter()
    for lo in range(0, len(todo), batch_inputs):
        chunk = todo[lo:lo + batch_inputs]
        gens = {ex.id: dialogue_for(method, schema, ex.text, system or prompts.SYSTEM, stage1_top_k) for ex in chunk}
        fresh = {ex.id: 0 for ex in chunk}  # answers this input needed from the backend
        turn = {ex.id: 0 for ex in chunk}
        pending = {i: next(g) for i, g in gens.items()}
        while pending:
            replies: dict[str, object] = {}
            gen_ids, gen_prompts, gen_seeds, gen_keys = [], [], [], []
            sc_ids, sc_pairs, sc_keys = [], [], []
            for i, req in pending.items():
                if isinstance(req, Generate):
                    key = request_key("generate", req.chat, extra)
                    stats.answers += 1
                    stats.prompt_tokens += counter.chat(req.chat)
                    hit = cache.get(i, method, key)
                    if hit is not None:
                        replies[i] = hit
                        stats.reused += 1
                    else:
                        gen_ids.append(i)
                        gen_prompts.append(req.chat)
                        gen_seeds.append(derive_seed(seed, method, i, turn[i]))
                        gen_keys.append(key)
                elif isinstance(req, Score):
                    key = request_key("score", [[c, x] for c, x in req.pairs], None)
                    stats.scored += len(req.pairs)
                    stats.prompt_tokens += sum(counter.chat(c) + counter.text(x) for c, x in req.pairs)
                    hit = cache.get(i, method, key)
                    if hit is not None:
                        replies[i] = hit
                        stats.reused += len(req.pairs)
                    else:
                        sc_ids.append(i)
                        sc_pairs.append(req.pairs)
                        sc_keys.append(key)
                else:
                    raise TypeError(f"a dialogue yielded {req!r}")
            new_rows = []
            if gen_prompts:
                texts = _isolated(lambda rs: backend.generate([p for p, _ in rs], params, [s for _, s in rs]),
                                  list(zip(gen_prompts, gen_seeds)), stats)
                for i, key, t in zip(gen_ids, gen_keys, texts):
                    replies[i] = t
                    fresh[i] += 1
                    if t is not None:
                        new_rows.append((i, method, key, t))
            if sc_pairs:
                # one request per input: its pairs are scored together or fail together
                def score(reqs):
                    flat = [p for pairs in reqs for p in pairs]
                    logp = backend.score([c for c, _ in flat], [x for _, x in flat])
                    pos, out = 0, []
                    for pairs in reqs:
                        out.append([float(v) for v in logp[pos:pos + len(pairs)]])
                        pos += len(pairs)
                    return out

                for i, key, r in zip(sc_ids, sc_keys, _isolated(score, sc_pairs, stats)):
                    replies[i] = r
                    fresh[i] += 1
                    if r is not None:
                        new_rows.append((i, method, key, r))
            cache.put_many(new_rows)
            nxt = {}
            for i, reply in replies.items():
                if isinstance(pending[i], Generate) and reply is not None:
                    stats.completion_tokens += counter.text(reply)
                turn[i] += 1
                try:
                    nxt[i] = gens[i].send(reply)
                except StopIteration as done:
                    outcomes[i] = done.value
            pending = nxt
        stats.inputs_reused += sum(1 for ex in chunk if fresh[ex.id] == 0)
        if progress is not None:
            progress(len(chunk))
    stats.seconds = time.perf_counter() - start
    for o in outcomes.values():
        for t in o.turns:
            stats.status[t["status"]] = stats.status.get(t["status"], 0) + 1
    return outcomes, stats

"""The dialogues, one per input, written as generators: each yields a request (a chat to answer,
or (chat, continuation) pairs to score) and is sent the reply, appending every turn to its own
history. A driver (ie.runner) advances many dialogues together, so one backend call carries a
turn of every input. The result is an Outcome: predictions plus the dialogue and its turn log.

ChatIE (two stages):
  I.  which schema types occur (parsed from text, or scored yes/no by likelihood);
  II. one question per type found, each answered as a table.
Single turn: one question for the whole schema, as the paper's baseline.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from ie import prompts
from ie.parse import Parsed, arguments_from, entities_from, pairs_from, parse_type_list, single_turn_from
from ie.schema import Schema

Chat = list[dict[str, str]]


@dataclass(frozen=True)
class Generate:
    chat: Chat
    stage: str  # "stage1", "stage2:<type>" or "single"


@dataclass(frozen=True)
class Score:
    pairs: list[tuple[Chat, str]]  # (prompt, continuation)
    stage: str


@dataclass
class Outcome:
    """What one input's dialogue produced. `items` are the predicted tuples: (type, entity) for NER,
    (relation, subject, object) for RE, (event type, role, argument) for EE, where role and
    argument are "" for an event type detected without arguments."""
    items: list[tuple] = field(default_factory=list)
    dialogue: Chat = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)  # per LLM answer: stage, parse status, counts


Dialogue = Generator[Generate | Score, Any, Outcome]


def _record(out: Outcome, stage: str, parsed: Parsed) -> None:
    out.turns.append({"stage": stage, "status": parsed.status, "items": len(parsed.items)})


def _failed(out: Outcome, stage: str) -> Outcome:
    """The backend gave no answer to this turn (ie.runner sends None): the dialogue ends here with
    what it predicted so far, and the turn is counted as an error, not as an unparsed answer."""
    out.turns.append({"stage": stage, "status": "error", "items": 0})
    return out


def top_types(names: list[str], logp: list[float], top_k: int = 0) -> list[str]:
    """Stage I by likelihood: the types whose Yes outscores their No (logp holds Yes, No per type, in
    `names` order); with top_k > 0, at most the top_k of them by Yes minus No, kept in schema order."""
    margin = {t: logp[2 * i] - logp[2 * i + 1] for i, t in enumerate(names)}
    found = [t for t in names if margin[t] > 0]
    if top_k:
        best = set(sorted(found, key=lambda t: -margin[t])[:top_k])  # a stable sort: ties go to schema order
        found = [t for t in found if t in best]
    return found


def chatie(schema: Schema, text: str, stage1: str = "text", system: str = prompts.SYSTEM,
           top_k: int = 0) -> Dialogue:
    """The two-stage chat; stage1 'text' parses the answer, 'likelihood' scores Yes/No per type (and
    with top_k > 0 asks stage II about the top_k most likely of the types scored Yes)."""
    out = Outcome(dialogue=[{"role": "system", "content": system}])
    h = out.dialogue
    names = schema.type_names()
    question = prompts.stage1(schema, text)
    if stage1 == "likelihood":
        pairs = []
        for t in names:
            ask = [h[0], {"role": "user", "content": prompts.yes_no(schema, t, text)}]
            pairs += [(ask, "Yes"), (ask, "No")]
        logp = yield Score(pairs, "stage1")
        if logp is None:
            return _failed(out, "stage1")
        found = top_types(names, logp, top_k)
        # the history records the scored decision as the answer to the usual stage I question, so
        # stage II reads the same whichever way stage I was decided
        h.append({"role": "user", "content": question})
        h.append({"role": "assistant", "content": "[" + ", ".join(found or ["none"]) + "]"})
        out.turns.append({"stage": "stage1", "status": "ok" if found else "none", "items": len(found),
                          "scored": {t: [logp[2 * i], logp[2 * i + 1]] for i, t in enumerate(names)}})
    else:
        h.append({"role": "user", "content": question})
        answer = yield Generate(list(h), "stage1")
        if answer is None:
            return _failed(out, "stage1")
        h.append({"role": "assistant", "content": answer})
        p = parse_type_list(answer, names)
        _record(out, "stage1", p)
        found = p.items
    for t in found:
        h.append({"role": "user", "content": prompts.stage2(schema, t, text)})
        stage = f"stage2:{t}"
        answer = yield Generate(list(h), stage)
        if answer is None:
            return _failed(out, stage)
        h.append({"role": "assistant", "content": answer})
        if schema.task == "ner":
            p = entities_from(answer, t)
            out.items += [(t, e) for e in p.items if (t, e) not in out.items]
        elif schema.task == "re":
            p = pairs_from(answer, t)
            out.items += [(t, s, o) for s, o in p.items if (t, s, o) not in out.items]
        else:
            p = arguments_from(answer, schema.events[t].roles)
            out.items.append((t, "", ""))  # the event type, detected in stage I
            out.items += [(t, r, a) for r, a in p.items if (t, r, a) not in out.items]
        _record(out, stage, p)
    return out


def single_turn(schema: Schema, text: str, system: str = prompts.SYSTEM) -> Dialogue:
    """The paper's baseline: the whole schema in one question, one answer."""
    out = Outcome(dialogue=[{"role": "system", "content": system},
                            {"role": "user", "content": prompts.single_turn(schema, text)}])
    answer = yield Generate(list(out.dialogue), "single")
    if answer is None:
        return _failed(out, "single")
    out.dialogue.append({"role": "assistant", "content": answer})
    p = single_turn_from(answer, schema.task, schema)
    out.items = list(p.items)
    _record(out, "single", p)
    return out


METHODS = ("chatie", "chatie_loglik", "single_turn")


def dialogue_for(method: str, schema: Schema, text: str, system: str = prompts.SYSTEM, top_k: int = 0) -> Dialogue:
    """`top_k`: chatie_loglik's stage1_top_k (the other methods have no ranking of types)."""
    if method == "chatie":
        return chatie(schema, text, "text", system)
    if method == "chatie_loglik":
        return chatie(schema, text, "likelihood", system, top_k)
    if method == "single_turn":
        return single_turn(schema, text, system)
    raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")

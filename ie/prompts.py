"""The prompts, in our own words (the paper's release has no clear licence). One system message,
the stage I question, one stage II question per task, the yes/no question that likelihood
scoring asks, and the single-turn baseline's one question."""

from __future__ import annotations

from ie.schema import Schema

SYSTEM = "You are a careful information extraction assistant. Answer only from the given text."

_KIND = {"ner": "entity types", "re": "relation types", "ee": "event types"}


def _a(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def type_catalogue(schema: Schema) -> str:
    return "\n".join(f"- {t}: {schema.description(t)}" for t in schema.type_names())


def _with_catalogue(schema: Schema, text: str, catalogue: str) -> str:
    # Events list 34 types (about 1,000 tokens with their roles) and llama-server evaluates a prompt at
    # about 100 tokens/s on 2 cores: with the text first, every input paid 10.7 s before its first
    # token. With the catalogue first, the server's prompt cache (cache_prompt) holds it from the
    # previous input and only the text is evaluated (measured: 1,043 of 1,044 tokens reused). Entity
    # and relation prompts keep the text first: their catalogues are short, and their benchmarks
    # were measured with that order.
    if schema.task == "ee":
        return f"{catalogue}\n\nText: \"{text}\"\n\n"
    return f"Text: \"{text}\"\n\n{catalogue}\n\n"


def stage1(schema: Schema, text: str) -> str:
    # Asking for "the names from the list, like [name1, name2]" made Qwen2.5-Coder-1.5B list the
    # entities themselves ("[Emma, Kaite, Ryan]") or say [none] on 34 of 48 WNUT-17 dev sentences;
    # asking for type names, "not the words of the text", lifted ChatIE's dev F1 from 0.20 to 0.45.
    # For relations "may occur" named 4.6 of 16 a sentence, where FewRel labels one: asking which
    # the text states cut that to 1.7 and lifted dev F1 from 0.058 to 0.090. For entity types the
    # stricter "occur" (tried together with a short-name rule in stage II) cost recall, dev F1
    # 0.45 -> 0.37, so NER and EE keep "may occur".
    kind = _KIND[schema.task]
    head = _with_catalogue(schema, text, f"{kind.capitalize()}:\n{type_catalogue(schema)}")
    if schema.task == "re":
        return (f"{head}Which of these relation types does the text state between two things it names? Answer with "
                f"the type names only, not the words of the text, as a list like [type1, type2], or [none] if it "
                f"states none.")
    return (f"{head}Which of these {kind} may occur in the text? Answer with the type names only, not the "
            f"words of the text, as a list like [type1, type2], or [none] if no type occurs.")


def stage2(schema: Schema, name: str, text: str) -> str:
    # Two changes from the paper's stage II, both measured on dev sentences (docs/chatie.md):
    # the text is quoted again, because asked by the relation's name alone Qwen2.5-Coder-1.5B
    # answered None for the gold relation on 99 of 128 FewRel test sentences (even "Andrew Fields is
    # a collegiate basketball coach" for 'sport'); and the question asks first whether the text
    # names any, with None as the first answer offered, which cut NER's over-extraction (WNUT-17 dev
    # precision 0.33 -> 0.42).
    quoted = f"Text: \"{text}\"\n\n"
    if schema.task == "ner":
        return (f"{quoted}Does the text name any {name} ({schema.entity_types[name]})? If it does not, answer None. "
                f"If it does, answer with a markdown table with the columns | entity type | entity |, one row per "
                f"{name}, copying each name exactly as written in the text.")
    if schema.task == "re":
        r = schema.relations[name]
        return (f"{quoted}Relation '{name}': {r.description}. Its subject is {_a(r.subject)} and its object is "
                f"{_a(r.object)}. Find every subject and object in the text that have this relation, and answer with a "
                f"markdown table with the columns | subject | object |, one row per pair, copying names exactly as "
                f"written in the text. If the text states no such pair, answer None.")
    e = schema.events[name]
    return (f"{quoted}The text describes {_a(name)} event ({e.description}). Fill in its arguments: answer with a "
            f"markdown table with the columns | role | argument |, one row for each of these roles: "
            f"{', '.join(e.roles)}. Copy each argument exactly as written in the text, and write None when a role "
            f"is not mentioned.")


def yes_no(schema: Schema, name: str, text: str) -> str:
    kind = {"ner": "entity of type", "re": "relation", "ee": "event of type"}[schema.task]
    return (f"Text: \"{text}\"\n\nDoes the text contain a {kind} '{name}' ({schema.description(name)})? "
            f"Answer Yes or No.")


def single_turn(schema: Schema, text: str) -> str:
    kind = _KIND[schema.task]
    if schema.task == "ner":
        ask = "every entity of these types, as a markdown table with the columns | entity type | entity |"
    elif schema.task == "re":
        cat = "\n".join(f"- {r}: {v.description} (subject: {v.subject}; object: {v.object})"
                        for r, v in schema.relations.items())
        return (f"Text: \"{text}\"\n\nRelation types:\n{cat}\n\nExtract every relation triple of these types from "
                f"the text, as a markdown table with the columns | subject | relation type | object |, copying names "
                f"exactly as written in the text. Answer None if there is none.")
    else:
        cat = "Event types:\n" + "\n".join(f"- {t}: {v.description} (roles: {', '.join(v.roles)})"
                                            for t, v in schema.events.items())
        return (f"{_with_catalogue(schema, text, cat)}Extract every event of these types and its arguments, as a "
                f"markdown table with the columns | event type | role | argument |, copying arguments exactly as "
                f"written in the text. Answer None if there is none.")
    return (f"Text: \"{text}\"\n\n{kind.capitalize()}:\n{type_catalogue(schema)}\n\nExtract {ask}, copying each "
            f"entity exactly as written in the text. Answer None if there is none.")

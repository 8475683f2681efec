"""The prompts, in our own words (the paper's release has no clear licence). One system message,
the stage I question, one stage II question per task, the yes/no question that likelihood
scoring asks, and the single-turn baseline's one question."""

from __future__ import annotations

from ie.schema import Schema

SYSTEM = "You are a careful information extraction assistant. Answer only from the given text."

_KIND = {"ner": "entity types", "re": "relation types", "ee": "event types"}


def type_catalogue(schema: Schema) -> str:
    return "\n".join(f"- {t}: {schema.description(t)}" for t in schema.type_names())


def stage1(schema: Schema, text: str) -> str:
    # Asking for "the names from the list, like [name1, name2]" made Qwen2.5-Coder-1.5B list the
    # entities themselves ("[Emma, Kaite, Ryan]") or say [none] on 34 of 48 WNUT-17 dev sentences;
    # asking for type names, "not the words of the text", lifted ChatIE's dev F1 from 0.20 to 0.45.
    kind = _KIND[schema.task]
    return (f"Text: \"{text}\"\n\n{kind.capitalize()}:\n{type_catalogue(schema)}\n\n"
            f"Which of these {kind} may occur in the text? Answer with the type names only, not the "
            f"words of the text, as a list like [type1, type2], or [none] if no type occurs.")


def stage2(schema: Schema, name: str) -> str:
    if schema.task == "ner":
        return (f"List every {name} entity in the text ({schema.entity_types[name]}). "
                f"Answer with a markdown table with the columns | entity type | entity |, one row per entity, "
                f"copying each entity exactly as written in the text. Answer None if there is none.")
    if schema.task == "re":
        r = schema.relations[name]
        return (f"For the relation '{name}' ({r.description}), list every pair in the text whose subject is a "
                f"{r.subject} and whose object is a {r.object}. Answer with a markdown table with the columns "
                f"| subject | object |, one row per pair, copying names exactly as written in the text. "
                f"Answer None if there is none.")
    e = schema.events[name]
    return (f"The text describes a {name} event ({e.description}). Fill in its arguments: answer with a markdown "
            f"table with the columns | role | argument |, one row for each of these roles: {', '.join(e.roles)}. "
            f"Copy each argument exactly as written in the text, and write None when a role is not mentioned.")


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
        cat = "\n".join(f"- {t}: {v.description} (roles: {', '.join(v.roles)})" for t, v in schema.events.items())
        return (f"Text: \"{text}\"\n\nEvent types:\n{cat}\n\nExtract every event of these types and its arguments, "
                f"as a markdown table with the columns | event type | role | argument |, copying arguments exactly "
                f"as written in the text. Answer None if there is none.")
    return (f"Text: \"{text}\"\n\n{kind.capitalize()}:\n{type_catalogue(schema)}\n\nExtract {ask}, copying each "
            f"entity exactly as written in the text. Answer None if there is none.")

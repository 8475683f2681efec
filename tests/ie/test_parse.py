"""The answer parsers on messy, real-looking LLM answers: lists, tuples, markdown tables with
prose around them, broken tables, free text and refusals. Nothing raises; status says what came."""

import pytest

from ie.parse import (
    NONE,
    OK,
    REFUSED,
    UNPARSED,
    arguments_from,
    entities_from,
    pairs_from,
    parse_rows,
    parse_type_list,
    single_turn_from,
)
from ie.schema import load_schema

NER_TYPES = ["person", "location", "group", "creative-work", "corporation", "product"]


@pytest.mark.parametrize("answer,types,status", [
    ("[person, location]", ["person", "location"], OK),
    ("The types are: ('person', 'corporation').", ["person", "corporation"], OK),
    ("Sure! Based on the text, the following types occur:\n1. Person\n2. Creative Work", ["person", "creative-work"], OK),
    ("[\"Location\", \"animal\"]", ["location"], OK),  # outside the schema: dropped
    ("I think there is a corporation and maybe a product mentioned.", ["corporation", "product"], OK),
    ("[none]", [], NONE),
    ("None of the types occur in this text.", [], NONE),
    ("No.", [], NONE),
    ("I'm sorry, but I cannot help with that request.", [], REFUSED),
    ("The sentence talks about the weather being mild.", [], UNPARSED),
    ("", [], UNPARSED),
])
def test_type_list(answer, types, status):
    p = parse_type_list(answer, NER_TYPES)
    assert (p.items, p.status) == (types, status)


def test_type_list_keeps_schema_order_and_prefers_the_bracketed_list():
    # prose mentions 'group' but the answer's list is what it answered
    p = parse_type_list("Not a group here. Answer: [product, person]", NER_TYPES)
    assert p.items == ["person", "product"]


def test_markdown_table_with_prose_header_and_separator():
    answer = ("Here is the table you asked for:\n\n| subject | object |\n|---|---|\n| Marie Curie | Pierre Curie |\n"
              "| Ada | Bob |\n\nLet me know if you need anything else.")
    p = pairs_from(answer, "spouse")
    assert p.status == OK and p.items == [("Marie Curie", "Pierre Curie"), ("Ada", "Bob")]


def test_broken_table_rows_are_skipped_not_fatal():
    answer = "| subject | object |\n|---|---|\n| Marie Curie | Pierre Curie\n| only one cell |\n| a | b | c | d |"
    p = pairs_from(answer, "spouse")
    assert p.items == [("Marie Curie", "Pierre Curie")]


def test_three_column_row_naming_the_relation_keeps_subject_and_object():
    p = pairs_from("| Marie Curie | spouse | Pierre Curie |", "spouse")
    assert p.items == [("Marie Curie", "Pierre Curie")]


def test_tuples_and_quotes():
    p = pairs_from("The pairs are ('Paris, France', 'Seine') and (\"London\", \"Thames\").", "located in")
    assert p.items == [("Paris, France", "Seine"), ("London", "Thames")]


def test_entities_from_table_list_and_bullets():
    table = "| entity type | entity |\n| --- | --- |\n| person | Taylor Swift |\n| person | **Lee** |"
    assert entities_from(table, "person").items == ["Taylor Swift", "Lee"]
    assert entities_from("Taylor Swift, Lee", "person").items == ["Taylor Swift", "Lee"]
    assert entities_from("- Taylor Swift\n- Lee\n", "person").items == ["Taylor Swift", "Lee"]
    assert entities_from("1. person: Taylor Swift\n2. person: Lee", "person").items == ["Taylor Swift", "Lee"]


def test_none_answers_and_none_rows():
    assert entities_from("None", "person").status == NONE
    assert entities_from("| entity type | entity |\n|---|---|\n| person | None |", "person").status == NONE
    assert pairs_from("There are no such pairs in the text.", "spouse").status == NONE


def test_refusal_and_prose_in_stage_two():
    assert entities_from("As an AI language model, I cannot extract personal names.", "person").status == REFUSED
    long_prose = ("The text is a tweet about a concert that happened yesterday in a big city, and it does not "
                  "really say much more than that.")
    assert parse_rows(long_prose).status == UNPARSED


def test_event_arguments_match_schema_roles_and_skip_empty_ones():
    roles = ("Attacker", "Target", "ExplosiveDevice", "Place")
    answer = ("| role | argument |\n|---|---|\n| Attacker | None |\n| explosive device | car bomb |\n"
              "| Place | Kabul |\n| Weather | sunny |")
    p = arguments_from(answer, roles)
    assert p.status == OK and p.items == [("ExplosiveDevice", "car bomb"), ("Place", "Kabul")]
    assert arguments_from("| role | argument |\n|---|---|\n| Attacker | None |", roles).status == NONE


def test_single_turn_rows_are_typed_by_the_schema():
    schema = load_schema("wnut17")
    answer = "| entity type | entity |\n|---|---|\n| person | Lee |\n| animal | cat |\n| Location | Kabul |"
    p = single_turn_from(answer, "ner", schema)
    assert p.items == [("person", "Lee"), ("location", "Kabul")]
    re_schema = load_schema("fewrel")
    p = single_turn_from("| Marie | spouse | Pierre |\n| x | likes | y |", "re", re_schema)
    assert p.items == [("spouse", "Marie", "Pierre")]
    ee = load_schema("wikievents")
    p = single_turn_from("| Life.Die.Unspecified | Victim | soldiers |\n| Conflict.Attack.Unspecified | None | x |",
                         "ee", ee)
    assert ("Life.Die.Unspecified", "Victim", "soldiers") in p.items
    assert ("Conflict.Attack.Unspecified", "", "") in p.items  # detected type without a usable role


@pytest.mark.parametrize("cell, expected", [
    # the shortened names Qwen2.5-Coder-1.5B answered on WikiEvents
    ("GenericCrime", "GenericCrime.GenericCrime.GenericCrime"),
    ("Justice.ChargeIndict", "Justice.ChargeIndict.Unspecified"),
    ("life.die", "Life.Die.Unspecified"),
    ("DamageDestroyDisableDismantle.Destroy", "ArtifactExistence.DamageDestroyDisableDismantle.Destroy"),
    # several types hold the run: the generic subtype, when there is one
    ("Conflict.Attack", "Conflict.Attack.Unspecified"),
    ("Contact.Contact", "Contact.Contact.Unspecified"),
    # ambiguous (four subtypes, none generic), or not a part of any name
    ("DamageDestroyDisableDismantle", None),
    ("Death", None),
    ("Conflict.Attack.Demonstrate", None),
    ("Unspecified", None),
])
def test_a_shortened_dotted_type_name_resolves_only_when_one_type_holds_it(cell, expected):
    from ie.parse import TypeNames

    assert TypeNames(load_schema("wikievents").type_names()).get(cell) == expected


def test_shortened_type_names_in_stage_one_and_in_single_turn_but_never_from_an_argument():
    from ie.parse import TypeNames

    ee = load_schema("wikievents")
    p = parse_type_list("[GenericCrime, Life.Die, DamageDestroyDisableDismantle, Death]", ee.type_names())
    assert (p.status, p.items) == (OK, ["GenericCrime.GenericCrime.GenericCrime", "Life.Die.Unspecified"])
    assert parse_type_list("[DamageDestroyDisableDismantle]", ee.type_names()).status == UNPARSED
    p = single_turn_from("| Life.Die | Victim | soldiers |\n| Death | Victim | Attack |", "ee", ee)
    # 'Attack' would resolve to Conflict.Attack.Unspecified, but it sits in the argument column
    assert p.items == [("Life.Die.Unspecified", "Victim", "soldiers")]
    # undotted names (entity and relation types) match as before, exactly after norm_type
    ner = TypeNames(NER_TYPES)
    assert (ner.get("Creative Work"), ner.get("creative"), ner.get("person.location")) == ("creative-work", None, None)

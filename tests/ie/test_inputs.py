"""Bad input is a clear error naming the file and the line: schemas with no types or undeclared
argument types, data lines that do not match their task's format; and the converters."""

import json

import pytest

from ie import convert
from ie.config import find_path
from ie.data import load_jsonl
from ie.errors import InputError
from ie.schema import load_schema


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("text,line,message", [
    ("task: ner\ntypes: {}\n", 2, "declares no types"),
    ("task: ner\nname: x\n", 1, "needs 'types'"),
    ("task: re\nentity_types:\n  person: a person\nrelations:\n  spouse: {description: married, subject: person,"
     " object: animal}\n", 5, "object type 'animal' is not declared"),
    ("task: ee\nevents:\n  Attack:\n    description: an attack\n    roles: []\n", 5, "non-empty list"),
    ("task: qa\n", 1, "not one of ner, re, ee"),
    ("task: ner\ntypes:\n  person: a person\ncolour: red\n", 4, "unknown key 'colour'"),
    ("task: ner\ntypes: [person\n", 3, "not valid YAML"),
])
def test_bad_schema_names_file_and_line(tmp_path, text, line, message):
    p = write(tmp_path, "schema.yaml", text)
    with pytest.raises(InputError) as err:
        load_schema(p)
    assert err.value.key == f"{p}:{line}"
    assert message in str(err.value)


def test_unknown_schema_name_lists_the_shipped_ones():
    with pytest.raises(InputError, match="wikievents"):
        load_schema("no-such-schema")


def test_user_schema_and_data(tmp_path):
    schema = load_schema(write(tmp_path, "s.yaml", "task: ner\ntypes:\n  drug: a medicine\n  dose: an amount\n"))
    rows = [{"id": 1, "text": "Take 5 mg aspirin", "entities": [{"type": "drug", "text": "aspirin", "start": 10,
                                                                 "end": 17}]},
            {"id": "2", "text": "", "entities": []}]
    p = write(tmp_path, "d.jsonl", "".join(json.dumps(r) + "\n" for r in rows) + "\n")
    exs = load_jsonl(p, "ner", schema)
    assert [e.id for e in exs] == ["1", "2"] and exs[0].gold[0]["start"] == 10


@pytest.mark.parametrize("line,message", [
    ('{"id": 1, "text": "a b", "entities": [{"type": "animal", "text": "a"}]}', "type 'animal' is not in the schema"),
    ('{"id": 1, "entities": []}', "missing 'text'"),
    ('{"id": 1, "text": "a b", "entities": [{"type": "drug", "text": "b", "start": 0, "end": 1}]}', "not 'b'"),
    ('{"id": 1, "text": "a b", "triples": []}', "the task is ner"),
    ('{"id": 1, "text": "a b"', "not valid JSON"),
    ('{"id": 0, "text": "x"}', "already used on line 1"),
])
def test_bad_data_line_names_file_and_line(tmp_path, line, message):
    schema = load_schema(write(tmp_path, "s.yaml", "task: ner\ntypes:\n  drug: a medicine\n"))
    p = write(tmp_path, "d.jsonl", '{"id": 0, "text": "fine"}\n' + line + "\n")
    with pytest.raises(InputError) as err:
        load_jsonl(p, "ner", schema)
    assert err.value.key == f"{p}:2" and message in str(err.value)


def test_relation_and_event_lines_are_checked_against_the_schema(tmp_path):
    p = write(tmp_path, "re.jsonl", '{"id": 1, "text": "x", "triples": [{"relation": "likes", "subject": "a", '
                                    '"object": "b"}]}\n')
    with pytest.raises(InputError, match="relation 'likes' is not in the schema"):
        load_jsonl(p, "re", load_schema("fewrel"))
    p = write(tmp_path, "ee.jsonl", '{"id": 1, "text": "x", "events": [{"type": "Life.Die.Unspecified", '
                                    '"arguments": [{"role": "Weather", "text": "sun"}]}]}\n')
    with pytest.raises(InputError, match="role 'Weather' is not a role of Life.Die.Unspecified"):
        load_jsonl(p, "ee", load_schema("wikievents"))


DATA = find_path("shared/data")
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="the shared data folder is not beside this checkout")


@needs_data
def test_wnut17_converter_keeps_offsets():
    exs = convert.wnut17(DATA / "wnut17", limit=50)
    ents = [(e, g) for e in exs for g in e.gold]
    assert len(exs) == 50 and ents
    assert all(e.text[g["start"]:g["end"]] == g["text"] for e, g in ents)
    assert exs[1].gold == [{"type": "location", "text": "Waltengoo Nar", "start": 54, "end": 67}]


@needs_data
def test_fewrel_and_wikievents_converters():
    exs = convert.fewrel(DATA / "fewrel", per_relation=2, relations=3)
    assert len(exs) == 6 and exs[0].gold[0] == {"relation": "crosses", "subject": "Cape Girardeau Bridge",
                                                "object": "Mississippi River"}
    ev = convert.wikievents(DATA / "wikievents", docs=1)
    assert ev[0].gold[0]["type"] == "Life.Die.Unspecified"
    assert {"role": "Killer", "text": "The Taliban"} in ev[0].gold[0]["arguments"]
    # every argument kept lies in its sentence
    assert all(a["text"] in e.text for e in ev for g in e.gold for a in g["arguments"])


def test_dataset_methods_config():
    from core.config import ConfigError, from_dict
    from ie.config import DatasetConfig

    base = {"name": "d", "task": "ner", "path": "x.jsonl", "schema": "wnut17"}
    assert from_dict(DatasetConfig, {**base, "methods": [], "spacy": True}).methods == []
    with pytest.raises(ConfigError, match="only with spacy"):
        from_dict(DatasetConfig, {**base, "methods": []})
    with pytest.raises(ConfigError, match="spaCy reference is for NER"):
        from_dict(DatasetConfig, {**base, "task": "re", "spacy": True})
    with pytest.raises(ConfigError, match="source 'fewrel' is a re dataset"):
        from_dict(DatasetConfig, {**base, "source": "fewrel"})

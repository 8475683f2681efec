"""Data loading: the shared Reuters and FIGER slices, users' JSONL, the seeded split, and bad input
(each error names the field and the line)."""

import json

import numpy as np
import pytest

from core.config import ConfigError
from multilabel.data import DataConfig, make_split, read_jsonl
from multilabel.policy import label_order


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_reuters_split_is_seeded_and_every_label_has_a_training_example():
    a = make_split(DataConfig(name="reuters", split_seed=3))
    b = make_split(DataConfig(name="reuters", split_seed=3))
    c = make_split(DataConfig(name="reuters", split_seed=4))
    assert a.num_labels == 90
    assert sum(len(v) for v in a.texts.values()) == 3019
    assert a.texts == b.texts and a.texts["test"] != c.texts["test"]
    assert (a.train_counts >= 1).all()
    assert np.array_equal(a.train_counts, a.y["train"].sum(0))


def test_figer_mentions_with_type_paths_in_hierarchy_order():
    s = make_split(DataConfig(name="figer"))
    assert sum(len(v) for v in s.texts.values()) == 563
    assert all(n.startswith("/") for n in s.label_names)
    order = [s.label_names[i] for i in label_order(s.label_names, s.train_counts, "hierarchy")]
    assert sorted(order) == sorted(s.label_names)
    for pos, name in enumerate(order):  # a parent comes before its children
        parent = name.rsplit("/", 1)[0]
        if parent in order:
            assert order.index(parent) < pos


def test_user_jsonl_skips_and_counts_empty_lines(tmp_path):
    rows = [{"text": f"doc {i}", "labels": ["a"] if i % 2 else ["b", "a"]} for i in range(30)]
    p = _write(tmp_path / "d.jsonl", rows[:10] + ["", "   "] + rows[10:])
    ds = read_jsonl(p)
    assert len(ds) == 30 and ds.skipped_empty_lines == 2
    s = make_split(DataConfig(name=str(p)))
    assert s.label_names == ["a", "b"]
    assert any("2 empty line(s) skipped" in n for n in s.notes)


@pytest.mark.parametrize("rows,key,where", [
    ([{"text": "x", "labels": []}, {"text": "y", "labels": []}], "data.labels_field", "empty on every line"),
    ([{"text": "x", "labels": ["a"]}, {"text": "y", "labels": "a"}], "data.labels_field", "line 2"),
    ([{"text": "x", "labels": ["a"]}, {"body": "y", "labels": ["a"]}], "data.text_field", "line 2"),
    ([{"text": "x", "labels": ["a"]}, "not json"], "data.name", "line 2"),
])
def test_bad_jsonl_names_the_field_and_the_line(tmp_path, rows, key, where):
    p = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(ConfigError) as err:
        read_jsonl(p)
    assert err.value.key == key and where in str(err.value)


def test_a_test_label_training_never_saw_is_an_error(tmp_path):
    train = _write(tmp_path / "train.jsonl", [{"text": f"t{i}", "labels": ["a", "b"][: 1 + i % 2]} for i in range(20)])
    test = _write(tmp_path / "test.jsonl", [{"text": "u", "labels": ["a"]}, {"text": "v", "labels": ["c"]}])
    with pytest.raises(ConfigError) as err:
        make_split(DataConfig(name=str(train), test_path=str(test), train_fraction=0.75, dev_fraction=0.25))
    assert err.value.key == "data.test_path" and "line 2" in str(err.value) and "'c'" in str(err.value)


def test_missing_text_field_in_config_names_it(tmp_path):
    p = _write(tmp_path / "d.jsonl", [{"sentence": "x", "labels": ["a"]}])
    with pytest.raises(ConfigError) as err:
        make_split(DataConfig(name=str(p)))
    assert err.value.key == "data.text_field" and "line 1" in str(err.value) and "sentence" in str(err.value)

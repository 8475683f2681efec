import json

import numpy as np
import pytest

from core.config import ConfigError
from core.data import DataConfig, check_dataset_name, load_splits, tokenize
from core.models import load_tokenizer


def test_rotten_tomatoes_split_is_fixed_and_disjoint():
    tr, te = load_splits(DataConfig())
    tr2, te2 = load_splits(DataConfig())
    assert tr.label_names == ["rotten", "fresh"]
    assert len(tr) + len(te) == 12808  # 7,403 fresh + 5,405 rotten snippets; plot lines dropped
    assert tr.texts[:50] == tr2.texts[:50] and te.fingerprint == te2.fingerprint
    assert 0.55 < tr.labels.mean() < 0.60  # fresh share


def test_caps_and_split_seed():
    tr, te = load_splits(DataConfig(max_train=100, max_test=50))
    assert (len(tr), len(te)) == (100, 50)
    other, _ = load_splits(DataConfig(max_train=100, split_seed=1))
    assert tr.texts != other.texts


def test_csv_and_jsonl_with_string_labels(tmp_path):
    rows = [{"text": f"t{i}", "label": "pos" if i % 3 else "neg"} for i in range(30)]
    jl = tmp_path / "d.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in rows))
    csv = tmp_path / "d.csv"
    csv.write_text("text,label\n" + "\n".join(f"{r['text']},{r['label']}" for r in rows))
    for path in (jl, csv):
        tr, te = load_splits(DataConfig(name=str(path), test_fraction=0.2))
        assert tr.label_names == ["neg", "pos"] and len(tr) == 24 and len(te) == 6
        assert set(np.unique(tr.labels)) <= {0, 1}


def test_missing_column_names_the_key(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"sentence": "a", "label": 1}\n')
    with pytest.raises(ConfigError) as e:
        load_splits(DataConfig(name=str(p)))
    assert e.value.key == "data.text_column"


@pytest.mark.parametrize("name", ["rotten_tomatos", "nope.csv"])
def test_unknown_dataset_names_the_key(name):
    with pytest.raises(ConfigError) as e:
        check_dataset_name(name)
    assert e.value.key == "data.name"


def test_tokenization_is_cached_per_process():
    tr, _ = load_splits(DataConfig(max_train=64, max_test=8))
    tok = load_tokenizer("minilm")
    a = tokenize(tr, tok, 32)
    assert tokenize(tr, tok, 32) is a
    assert a["input_ids"].shape == (64, 32) and a["labels"].tolist() == tr.labels.tolist()


def test_text_pools_packaged_and_from_files(tmp_path):
    from core.data import TEXT_POOLS, load_texts

    assert len(load_texts("halueval_summarization", limit=5)) == 5
    assert load_texts("halueval_qa", limit=1)[0].startswith("Arthur's Magazine")  # the knowledge passage
    assert set(TEXT_POOLS) >= {"rotten_tomatoes", "tweets", "halueval_qa"}
    f = tmp_path / "pool.jsonl"
    f.write_text('{"body": "one"}\n{"body": "two"}\n')
    assert load_texts(str(f), text_column="body") == ["one", "two"]
    with pytest.raises(ConfigError, match="no column 'text'.*body"):
        load_texts(str(f))
    with pytest.raises(ConfigError, match="unknown text pool 'nope'; allowed: rotten_tomatoes"):
        load_texts("nope")


def test_few_shot_splits_are_balanced_disjoint_and_seeded():
    from core.data import few_shot

    train, _ = load_splits(DataConfig(name="rotten_tomatoes"))
    a, b = few_shot(train, 16, seed=13)
    assert np.bincount(a.labels).tolist() == [16, 16] and np.bincount(b.labels).tolist() == [16, 16]
    assert not set(a.texts) & set(b.texts)
    assert few_shot(train, 16, seed=13)[0].texts == a.texts and few_shot(train, 16, seed=21)[0].texts != a.texts
    with pytest.raises(ConfigError, match="fewer than 2 x 99999"):
        few_shot(train, 99999, seed=0)


def test_a_jsonl_line_that_is_not_json_names_the_key_file_and_line(tmp_path):
    from core.config import ConfigError
    from core.data import DataConfig, load_splits

    f = tmp_path / "bad.jsonl"
    f.write_text('{"text": "good", "label": 0}\n\nnot json at all\n')
    with pytest.raises(ConfigError) as err:
        load_splits(DataConfig(name=str(f)))
    assert err.value.key == "data.name" and "line 3" in str(err.value) and str(f) in str(err.value)


def test_a_dataset_with_a_single_label_is_refused(tmp_path):
    from core.config import ConfigError
    from core.data import DataConfig, load_splits

    f = tmp_path / "one.jsonl"
    f.write_text("".join(f'{{"text": "review {i}", "label": "fresh"}}\n' for i in range(20)))
    with pytest.raises(ConfigError) as err:
        load_splits(DataConfig(name=str(f)))
    assert err.value.key == "data.label_column" and "'fresh'" in str(err.value)

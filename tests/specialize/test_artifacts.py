"""Artifact keys, the atomic store, and the completion test."""

from __future__ import annotations

import json

import pytest

from core.config import from_dict
from specialize.artifacts import MARKER, ArtifactStore, artifact_key, check_complete
from specialize.recipe import SpecializeConfig, build_recipe
from specialize.runner import stage_keys


def keys(d):
    return stage_keys(build_recipe(from_dict(SpecializeConfig, d)))


def test_key_is_a_function_of_kind_config_inputs_and_context():
    base = artifact_key("central", {"epochs": 1, "student": {"lr": 0.1}}, {"init": "abc/model"}, {"seed": 0})
    assert base == artifact_key("central", {"student": {"lr": 0.1}, "epochs": 1}, {"init": "abc/model"}, {"seed": 0})
    assert base != artifact_key("central", {"epochs": 2, "student": {"lr": 0.1}}, {"init": "abc/model"}, {"seed": 0})
    assert base != artifact_key("central", {"epochs": 1, "student": {"lr": 0.2}}, {"init": "abc/model"}, {"seed": 0})
    assert base != artifact_key("central", {"epochs": 1, "student": {"lr": 0.1}}, {"init": "abd/model"}, {"seed": 0})
    assert base != artifact_key("central", {"epochs": 1, "student": {"lr": 0.1}}, {"init": "abc/model"}, {"seed": 1})
    assert base != artifact_key("spry", {"epochs": 1, "student": {"lr": 0.1}}, {"init": "abc/model"}, {"seed": 0})
    # where a job runs is not what it computes
    assert base == artifact_key("central", {"epochs": 1, "student": {"lr": 0.1}, "run": {"root": "elsewhere"},
                                            "ray_num_cpus": 8}, {"init": "abc/model"}, {"seed": 0})


def test_recipe_keys_change_downstream_of_a_config_change_only(mini):
    before = keys(mini)
    assert keys(mini) == before  # deterministic
    changed = json.loads(json.dumps(mini))
    changed["stages"][0]["config"]["limit"] = 40  # raw feeds ppl, not student
    after = keys(changed)
    assert after["raw"] != before["raw"] and after["ppl"] != before["ppl"]
    assert after["student"] == before["student"]
    moved = json.loads(json.dumps(mini))
    moved["run"] = {"root": "/somewhere/else"}
    moved["ray_num_cpus"] = 1
    moved["max_concurrent_stages"] = 1
    assert keys(moved) == before
    reseeded = json.loads(json.dumps(mini))
    reseeded["data"]["max_test"] = 20  # the task data: every stage that uses it
    after = keys(reseeded)
    assert after["raw"] != before["raw"] and after["student"] != before["student"]
    # lm_eval does not use the task data: only its input's key changed
    assert after["ppl"] != before["ppl"]
    edited_ppl = json.loads(json.dumps(mini))
    edited_ppl["stages"][2]["config"]["eval_blocks"] = 3
    after = keys(edited_ppl)
    assert after["ppl"] != before["ppl"] and after["raw"] == before["raw"] and after["student"] == before["student"]


def _commit(store, stage="s", key="k1", text="hello"):
    tmp = store.begin(stage, key)
    (tmp / "dataset").mkdir()
    (tmp / "dataset" / "data.jsonl").write_text(text)
    return store.commit(stage, key, tmp, {"dataset": "dataset"}, {"metric": "x", "x": 1.0}, 2.5)


def test_commit_is_complete_and_readable(tmp_path):
    store = ArtifactStore(tmp_path / "a")
    art = _commit(store)
    assert art.path == tmp_path / "a" / "s-k1"
    assert check_complete(art.path, "k1") == (True, "")
    got = store.get("s", "k1")
    assert got is not None and got.metrics == {"metric": "x", "x": 1.0} and got.seconds == 2.5
    assert (got.output("dataset") / "data.jsonl").read_text() == "hello"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["s-k1"]  # no temporary left


@pytest.mark.parametrize("damage", ["no marker", "missing file", "truncated file", "other key", "torn marker"])
def test_an_incomplete_artifact_is_never_done(tmp_path, damage):
    store = ArtifactStore(tmp_path / "a")
    art = _commit(store)
    f = art.path / "dataset" / "data.jsonl"
    if damage == "no marker":
        (art.path / MARKER).unlink()
    elif damage == "missing file":
        f.unlink()
    elif damage == "truncated file":
        f.write_text("hel")
    elif damage == "other key":
        meta = json.loads((art.path / MARKER).read_text())
        meta["key"] = "k2"
        (art.path / MARKER).write_text(json.dumps(meta))
    else:
        (art.path / MARKER).write_text('{"stage": "s", "key"')
    ok, why = check_complete(art.path, "k1")
    assert not ok and why
    assert store.get("s", "k1") is None
    # recomputing replaces it whole
    again = _commit(store, text="again")
    assert check_complete(again.path, "k1")[0]
    assert (again.path / "dataset" / "data.jsonl").read_text() == "again"


def test_a_stage_that_wrote_nothing_is_not_committed(tmp_path):
    store = ArtifactStore(tmp_path / "a")
    tmp = store.begin("s", "k1")
    with pytest.raises(RuntimeError, match="wrote nothing"):
        store.commit("s", "k1", tmp, {"dataset": "dataset"}, {}, 0.0)
    assert store.get("s", "k1") is None


def test_killed_writes_leave_only_temporaries_which_are_cleaned(tmp_path):
    store = ArtifactStore(tmp_path / "a")
    tmp = store.begin("s", "k1")
    (tmp / "dataset").mkdir()
    (tmp / "dataset" / "data.jsonl").write_text("half")
    assert store.get("s", "k1") is None  # a temporary folder is never an artifact
    assert store.clean_temporaries() == 1
    assert list((tmp_path / "a").iterdir()) == []


def test_an_earlier_runs_artifact_is_brought_in(tmp_path):
    _commit(ArtifactStore(tmp_path / "run1"), text="first")
    store = ArtifactStore(tmp_path / "run2", lookup=[tmp_path / "run1"])
    art = store.get("s", "k1")
    assert art is not None and art.path == tmp_path / "run2" / "s-k1"
    assert (art.output("dataset") / "data.jsonl").read_text() == "first"
    assert store.get("s", "k2") is None


def test_storage_path_gets_a_copy_that_a_fresh_run_reuses(tmp_path):
    shared = tmp_path / "shared"
    _commit(ArtifactStore(tmp_path / "run1", storage_path=str(shared)), text="kept")
    copied = shared / "specialize" / "artifacts" / "s-k1"
    assert check_complete(copied, "k1")[0]
    store = ArtifactStore(tmp_path / "run2", storage_path=str(shared))
    art = store.get("s", "k1")
    assert art is not None and (art.output("dataset") / "data.jsonl").read_text() == "kept"
    # an incomplete copy on the storage path is not taken
    (copied / "dataset" / "data.jsonl").unlink()
    assert ArtifactStore(tmp_path / "run3", storage_path=str(shared)).get("s", "k1") is None

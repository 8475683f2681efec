"""Run directories and their copy to run.storage_path (a folder or a pyarrow URI)."""

import json

import pytest

from core.config import ConfigError, from_dict
from core.runs import RunConfig, RunDir, upload_run
from fl.config import SpryConfig


def _run(tmp_path):
    run = RunDir.create("spry", tmp_path / "runs")
    run.write_json("metrics.json", {"accuracy": 0.75})
    (run.path / "checkpoints").mkdir()
    (run.path / "checkpoints" / "round-2.pt").write_bytes(b"\x00" * 100)
    run.write_summary("# done\n")
    return run


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("as_uri", [False, True], ids=["folder", "file-uri"])
def test_upload_copies_the_whole_run(tmp_path, as_uri):
    run = _run(tmp_path)
    store = tmp_path / "store"
    where = upload_run(run, store.as_uri() if as_uri else str(store))
    dest = store / "spry" / run.path.name
    assert where.endswith(f"spry/{run.path.name}")
    assert _files(dest) == _files(run.path) == ["checkpoints/round-2.pt", "metrics.json", "summary.md"]
    assert json.loads((dest / "metrics.json").read_text()) == {"accuracy": 0.75}
    assert not list((store / "spry").glob(".*")), "the temporary upload name is left behind"


def test_a_second_upload_replaces_the_first(tmp_path):
    run = _run(tmp_path)
    store = tmp_path / "store"
    upload_run(run, str(store))
    (run.path / "checkpoints" / "round-2.pt").unlink()
    run.write_json("metrics.json", {"accuracy": 0.8})  # a resumed run, uploaded again
    upload_run(run, str(store))
    dest = store / "spry" / run.path.name
    assert _files(dest) == ["metrics.json", "summary.md"]
    assert json.loads((dest / "metrics.json").read_text()) == {"accuracy": 0.8}


def test_no_storage_path_or_no_run_is_a_no_op(tmp_path):
    run = _run(tmp_path)
    assert upload_run(run, None) is None
    assert upload_run(RunDir(tmp_path / "removed"), str(tmp_path / "store")) is None
    assert not (tmp_path / "store").exists()


def test_a_failed_upload_is_logged_and_keeps_the_local_run(tmp_path, caplog):
    run = _run(tmp_path)
    blocker = tmp_path / "store"
    blocker.write_text("a file where the storage folder should be")
    assert upload_run(run, str(blocker)) is None
    assert "could not copy" in caplog.text
    assert (run.path / "summary.md").is_file()


def test_storage_path_scheme_is_checked_at_config_load():
    assert from_dict(RunConfig, {"storage_path": "s3://bucket/tailor"}).storage_path == "s3://bucket/tailor"
    with pytest.raises(ConfigError) as err:
        from_dict(SpryConfig, {"run": {"storage_path": "ftp://host/runs"}})
    assert err.value.key == "run.storage_path"
    assert "ftp" in str(err.value) and "s3://" in str(err.value)

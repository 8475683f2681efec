"""Bad input fails with exit code 2 and a message naming the field, before Ray starts, leaving no run directory."""

import pytest

from tests.ray_jobs.jobs import run_job


def _run(tmp_path, *args, config="configs/spry/tiny.yaml"):
    return run_job("spry", config, tmp_path, *args)


@pytest.mark.parametrize(
    "override,key",
    [
        ("model.name=no-such-model", "model.name"),
        ("data.name=no_such_data", "data.name"),
        ("fl.roundz=3", "fl.roundz"),
        ("fl.rounds=0", "fl.rounds"),
        ("partition.alpha=0", "partition.alpha"),
        ("fl.clients_per_round=9", "fl.clients_per_round"),
        ("adapter.target_modules=[out_proj]", "adapter.target_modules"),
        ("resources.num_gpus=4", "resources.num_gpus"),
    ],
)
def test_bad_input_exits_2_naming_the_field(tmp_path, override, key):
    proc = _run(tmp_path, "--set", override)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert key in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_missing_required_config_file(tmp_path):
    proc = _run(tmp_path, config="configs/spry/nope.yaml")
    assert proc.returncode == 2 and "file not found" in proc.stderr


@pytest.mark.parametrize(("content", "key", "needle"), [
    ('not json\n{"text": "a", "label": 0}\n', "data.name", "line 1"),
    ("".join(f'{{"text": "t{i}", "label": "pos"}}\n' for i in range(30)), "data.label_column", "'pos'"),
])
def test_bad_data_files_exit_2_before_ray(tmp_path, content, key, needle):
    f = tmp_path / "data.jsonl"
    f.write_text(content)
    proc = _run(tmp_path, "--set", f"data.name={f}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert key in proc.stderr and needle in proc.stderr
    assert not (tmp_path / "runs").exists()

"""The shared command line: --resume takes the run's saved config, and refuses --config or a folder
that is not a run of the job."""

from __future__ import annotations

import pytest

from core.config import ConfigError, to_yaml
from ray_jobs.cli import load_job_config, parse_args
from tests.core.test_config import Outer


def test_resume_loads_the_saved_config_with_its_overrides(tmp_path):
    saved = Outer(name="saved")
    (tmp_path / "config.yaml").write_text(to_yaml(saved))
    args = parse_args("gold", "doc", ["--resume", str(tmp_path), "--set", "inner.steps=7"], resumable=True)
    cfg = load_job_config(Outer, args, "GOLD")
    assert cfg.name == "saved" and cfg.inner.steps == 7


def test_resume_refuses_config_and_a_folder_without_config(tmp_path):
    args = parse_args("gold", "doc", ["--resume", str(tmp_path), "--config", "x.yaml"], resumable=True)
    with pytest.raises(ConfigError) as e:
        load_job_config(Outer, args, "GOLD")
    assert e.value.key == "--config" and "drop --config" in str(e.value)
    args = parse_args("gold", "doc", ["--resume", str(tmp_path)], resumable=True)
    with pytest.raises(ConfigError) as e:
        load_job_config(Outer, args, "GOLD")
    assert e.value.key == "--resume" and "not a GOLD run directory" in str(e.value)


def test_without_resume_the_config_file_and_overrides_apply(tmp_path):
    (tmp_path / "c.yaml").write_text("name: file\n")
    args = parse_args("multilabel", "doc", ["--config", str(tmp_path / "c.yaml"), "--set", "inner.lr=0.5"])
    cfg = load_job_config(Outer, args, "multilabel")
    assert cfg.name == "file" and cfg.inner.lr == 0.5

"""ray_jobs.unitable: bad input exits 2 naming the field before Ray starts; the job end to end on
the tiny config in seconds, counting bad images and going on."""

import json
import shutil
from pathlib import Path

import pytest

from ray_jobs import plans
from ray_jobs.unitable import main
from core.config import ConfigError, load
from tables.config import UniTableJobConfig
from tables.pubtabnet import DEFAULT_DIR

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "unitable" / "tiny.yaml")


@pytest.mark.parametrize("override,key", [
    ("finetune.max_structure_len=10", "finetune.max_structure_len"),
    ("finetune.max_box_len=5", "finetune.max_box_len"),
    ("model.heads=3", "model.heads"),
    ("data.image_size=36", "data.image_size"),
    ("finetune.freeze_encoder_epochs=9", "finetune.freeze_encoder_epochs"),
    ("model.pos_embedding=rope", "model.pos_embedding"),
    ("data.pubtabnet_path=/nonexistent", "data.pubtabnet_path"),
    ("train.zero_stage=3", "train.zero_stage"),
])
def test_bad_config_exits_2_naming_the_field(capsys, override, key):
    assert main(["--config", TINY, "--set", override]) == 2
    err = capsys.readouterr().err
    assert f"'{key}'" in err


def test_sincos_positions_need_a_width_divisible_by_4(capsys):
    assert main(["--config", TINY, "--set", "model.pos_embedding=sincos", "--set", "model.d_model=18"]) == 2
    assert "'model.d_model'" in capsys.readouterr().err


def test_sequence_lengths_that_cannot_hold_the_data_say_what_is_needed():
    with pytest.raises(ConfigError) as err:
        load(UniTableJobConfig, TINY, ["data.render.max_rows=6", "data.render.max_cols=6"])
    assert err.value.key == "finetune.max_structure_len" and "allowed: >= " in str(err.value)


@pytest.mark.parametrize("name", ["tiny", "laptop", "cluster"])
def test_every_config_loads_and_plans_on_a_gpu_cluster(name):
    job = load(UniTableJobConfig, ROOT / "configs" / "unitable" / f"{name}.yaml")
    lines = plans.plan_unitable(job, {"CPU": 64.0, "GPU": 8.0})
    assert lines[0].startswith("Ray Train workers")
    if name == "cluster":
        assert job.device == "cuda" and job.train.use_gpu and job.train.num_workers == 8
        assert job.finetune.max_structure_len == 512 and job.data.image_size == 448


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_DIR.is_dir(), reason="no PubTabNet data")
def test_the_job_end_to_end_on_the_tiny_config(tmp_path, capsys):
    # PubTabNet with one unreadable image: reported and counted, the run goes on
    pub = tmp_path / "pub"
    (pub / "images").mkdir(parents=True)
    lines = (DEFAULT_DIR / "PubTabNet_Examples.jsonl").read_text().splitlines()[:3]
    for i, line in enumerate(lines):
        name = json.loads(line)["filename"]
        if i == 1:
            (pub / "images" / name).write_bytes(b"\x89PNG broken")
        else:
            shutil.copy(DEFAULT_DIR / "images" / name, pub / "images" / name)
    (pub / "PubTabNet_Examples.jsonl").write_text("\n".join(lines) + "\n")
    rc = main(["--config", TINY, "--set", f"run.root={tmp_path / 'runs'}", "--set", f"data.pubtabnet_path={pub}",
               "--set", "data.pubtabnet_limit=null"])
    assert rc == 0
    (run,) = (tmp_path / "runs" / "unitable").iterdir()
    summary = (run / "summary.md").read_text()
    assert "| pretrained | synthetic |" in summary and "| scratch | pubtabnet |" in summary
    assert "Skipped (bad images): 1" in summary and (run / "cells.png").stat().st_size > 0
    res = json.loads((run / "results.json").read_text())
    assert res["results"]["pretrained"]["pubtabnet"]["tables"] == 2
    assert res["kv"]["identical"] is True
    for arm in ("pretrained", "scratch"):
        r = res["results"][arm]["synthetic"]
        assert 0.0 <= r["teds"] <= r["teds_struct"] <= 1.0
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any(m.get("skipped") == json.loads(lines[1])["filename"] for m in metrics)
    assert {"render", "tokenizer", "pretrain", "finetune-pretrained", "finetune-scratch", "content"} <= \
        {m.get("stage") for m in metrics}

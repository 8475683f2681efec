"""One pretraining step and one fine-tuning step on Ray Train with 2 DDP workers at batch b equal
one process at batch 2b; a rerun under the same name resumes from the last epoch checkpoint."""

from dataclasses import asdict

import numpy as np
import pytest
import torch

from core.train import TrainConfig
from tables.data import prepare, render_tables, seq2seq_rows
from tables.model import ModelConfig
from tables.ray_train import train_on_ray
from tables.render import RenderConfig
from tables.train import shard_order, train_in_process
from tables.vocab import TableVocab
from tests.conftest import RAY

pytestmark = RAY

MODEL = asdict(ModelConfig(d_model=16, heads=2, encoder_layers=1, decoder_layers=1, ff=32, patch=8))
S = 32


@pytest.fixture(scope="module")
def tables():
    cfg = RenderConfig(max_rows=3, max_cols=2)
    prep = prepare(render_tables(4, cfg, 0, "train", use_ray=False), S)
    index, tokens = seq2seq_rows(prep, TableVocab(S), 40)
    return prep, index, tokens


def _finetune(tables, batch, epochs=1, encoder_state=None, sgd=True):
    prep, index, tokens = tables
    return {"kind": "seq2seq", "name": "ft", "seed": 3, "model": MODEL, "height": S, "width": S,
            "vocab_size": TableVocab(S).size, "max_len": 40, "encoder_state": encoder_state,
            "data": {"images": prep.images, "tokens": tokens, "index": index},
            "hp": {"epochs": epochs, "batch_size": batch, "lr": 0.5 if sgd else 1e-2, "freeze_encoder_epochs": 0,
                   "optimizer": "sgd" if sgd else "adamw"}}


def _pretrain(tables, batch):
    prep = tables[0]
    codes = np.random.default_rng(0).integers(0, 8, (len(prep.images), (S // 8) ** 2)).astype(np.int16)
    return {"kind": "mim", "name": "mim", "seed": 3, "model": MODEL, "height": S, "codebook": 8,
            "data": {"images": prep.images, "codes": codes},
            "hp": {"epochs": 1, "batch_size": batch, "lr": 0.5, "optimizer": "sgd", "num_masked": 6, "min_block": 2,
                   "min_aspect": 0.3}}


def _same(a: dict, b: dict, atol=1e-5):
    assert set(a) == set(b)
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=0), (k, (a[k] - b[k]).abs().max())


def test_shards_union_to_the_one_process_batch():
    whole = shard_order(8, 1, 0)
    two = [shard_order(8, 1, 0, r, 2) for r in range(2)]
    for t in range(2):  # step t at batch 2 per worker = step t at batch 4 in one process
        assert sorted(np.concatenate([s[2 * t:2 * t + 2] for s in two])) == sorted(whole[4 * t:4 * t + 4])


@pytest.mark.parametrize("make", [_pretrain, _finetune], ids=["pretrain", "finetune"])
def test_one_step_on_two_workers_equals_one_process_at_double_batch(ray_session, tmp_path, tables, make):
    local, _ = train_in_process(make(tables, 4 if make is _pretrain else 8))
    remote = train_on_ray(make(tables, 2 if make is _pretrain else 4), TrainConfig(num_workers=2, cpus_per_worker=0.5),
                          tmp_path, f"two-{make.__name__}")
    assert remote["history"][-1]["steps"] == 1  # one optimizer step
    start = train_in_process(dict(make(tables, 4), hp=dict(make(tables, 4)["hp"], lr=0.0)))[0]
    moved = max((p - q).abs().max().item() for p, q in zip(local.state_dict().values(), start.state_dict().values()))
    assert moved > 1e-3  # the step did change the weights
    _same(remote["model"], local.state_dict())


def test_a_rerun_under_the_same_name_resumes_from_the_last_epoch(ray_session, tmp_path, tables):
    cfg = TrainConfig(num_workers=1, cpus_per_worker=0.5)
    first = train_on_ray(_finetune(tables, 8, epochs=1, sgd=False), cfg, tmp_path, "resumable")
    assert [h["epoch"] for h in first["history"]] == [1]
    # (AdamW here: its moments come back from the checkpoint too)
    # the same run asked for 2 epochs: epoch 1 comes from the checkpoint, only epoch 2 trains
    second = train_on_ray(_finetune(tables, 8, epochs=2, sgd=False), cfg, tmp_path, "resumable")
    assert [h["epoch"] for h in second["history"]] == [1, 2]
    straight, _ = train_in_process(_finetune(tables, 8, epochs=2, sgd=False))
    _same(second["model"], straight.state_dict(), atol=1e-5)

"""Seed-only uplink: the server rebuilds a client's tensors from (start, seed, jvps), and that
uplink is far smaller than the tensors only while the steps are few against the chunk size."""


import pytest
import torch

from fl.local import spry_train
from fl.seed_replay import replay_spry_steps, uplink_bytes_seeds, uplink_bytes_tensors
from fl.zeroth_order import zeroth_order_train
from tests.fl.tiny import random_batches, tiny_model


def _tiny():
    # A different batch each step: the replay must not depend on the data.
    return (*tiny_model(), random_batches(4))


@pytest.mark.parametrize("optimizer,lr,wd,overrides", [
    ("sgd", 0.05, 0.01, None),
    ("adamw", 1e-2, 0.01, {"head.weight": 3e-2}),
])
def test_replay_rebuilds_spry_train(optimizer, lr, wd, overrides):
    model, params, batches = _tiny()
    seed_parts = (7, "spry", 2, 5)
    trained, metrics, jvps = spry_train(model, params, iter(batches), 4, 2, optimizer, lr, wd, seed_parts, overrides)
    assert len(jvps) == 4 and all(len(s) == 2 for s in jvps) and metrics["steps"] == 4

    replayed = replay_spry_steps(params, jvps, seed_parts, optimizer, lr, wd, overrides)
    assert list(replayed) == list(trained)
    moved = max(float((trained[k] - params[k]).abs().max()) for k in params)
    assert moved > 1e-3  # the match below is not two unmoved copies
    for k in params:
        assert torch.allclose(replayed[k], trained[k], atol=1e-6, rtol=0), k

    # The seed matters: another seed's directions rebuild something else.
    wrong = replay_spry_steps(params, jvps, (8, "spry", 2, 5), optimizer, lr, wd, overrides)
    assert max(float((wrong[k] - trained[k]).abs().max()) for k in params) > 1e-3


def test_replay_also_rebuilds_zeroth_order_train():
    # SPSA/central draw z exactly as forward_gradient draws v: the same uplink replays them.
    model, params, batches = _tiny()
    seed_parts = (7, "zo", 2, 5)
    trained, _, projections = zeroth_order_train(
        model, params, iter(batches), 4, "central", 1e-3, 2, "sgd", 0.05, 0.0, seed_parts)
    replayed = replay_spry_steps(params, projections, seed_parts, "sgd", 0.05, 0.0)
    for k in params:
        assert torch.allclose(replayed[k], trained[k], atol=1e-6, rtol=0), k


def test_uplink_bytes_accounting():
    tensors = {"a": torch.zeros(3, 4), "b": torch.zeros(5, dtype=torch.float64)}
    assert uplink_bytes_tensors(tensors) == 4 * 17  # float32 on the wire whatever the dtype
    assert uplink_bytes_seeds([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]) == 3 * (8 + 2 * 4)
    assert uplink_bytes_seeds([]) == 0


def test_seed_uplink_size_against_a_minilm_chunk():
    # MiniLM (hidden 384) LoRA r=1 pair (A 1x384, B 384x1) plus a 2x384 head: 1536 floats.
    # Ten K=1 steps cost 10 * (8 + 4) = 120 bytes against 6144: 51.2x, short of 100x. The
    # seed uplink grows with steps, so it passes 100x only at <= 5 steps for this chunk, or
    # for a bigger chunk: at 10 steps once the chunk exceeds 3000 floats, e.g. r=8 (6144 + 768).
    def chunk(r):
        return {"lora_A": torch.zeros(r, 384), "lora_B": torch.zeros(384, r), "head": torch.zeros(2, 384)}

    ten_steps = [[0.0]] * 10
    r1 = uplink_bytes_tensors(chunk(1)) / uplink_bytes_seeds(ten_steps)
    assert uplink_bytes_tensors(chunk(1)) == 6144 and uplink_bytes_seeds(ten_steps) == 120
    assert r1 == pytest.approx(51.2)
    assert uplink_bytes_tensors(chunk(1)) / uplink_bytes_seeds([[0.0]] * 5) > 100
    assert uplink_bytes_tensors(chunk(1)) / uplink_bytes_seeds([[0.0]] * 6) < 100
    assert uplink_bytes_tensors(chunk(8)) / uplink_bytes_seeds(ten_steps) > 100  # 27648/120 = 230.4x

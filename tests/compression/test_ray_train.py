"""Basel's relearning on Ray Train (compression.ray_train): a DeepSpeed ZeRO-1 engine on one
worker steps exactly as the in-process loop's plain optimizer (DeepSpeed would clip the gradient
norm at 1.0 by default; the DDP path and the paper's optimizer do not)."""

import torch

from compression.bases import to_basis_model
from compression.prune import budget_for
from compression.ray_train import relearn_on_ray
from compression.train import BaselConfig, basis_state, relearn
from core.models import ModelConfig, load_causal_lm
from core.train import TrainConfig
from tests.compression.test_bases import TARGETS
from tests.conftest import RAY

pytestmark = RAY


def test_zero1_on_one_worker_relearns_like_the_in_process_loop(ray_session, tmp_path):
    model_cfg = ModelConfig(name="tiny-llama", max_length=16)
    g = torch.Generator().manual_seed(0)
    blocks = torch.randint(1, 200, (32, 16), generator=g)
    # The tiny model's gradient norm starts near 0.5; steps this large push it past DeepSpeed's
    # default clip of 1.0 within a few steps, so a clipping engine would end elsewhere.
    cfg = BaselConfig(new_bases=2, batch_size=4, epochs=1, lr=1.0, new_bases_lr=1.0, prune_steps=2, log_every=4)
    model = load_causal_lm(model_cfg, seed=0)
    layers = to_basis_model(model, TARGETS, cfg.new_bases, seed=0)
    budget = budget_for(layers, 0.5)
    local_history = relearn(model, layers, blocks, cfg, budget, seed=0)

    state, history, factors = relearn_on_ray(model_cfg, TARGETS, blocks, cfg, budget,
                                             TrainConfig(num_workers=1, cpus_per_worker=1, zero_stage=1), tmp_path,
                                             seed=0)
    local = basis_state(layers)
    assert history[-1]["params"] == local_history[-1]["params"] <= budget
    assert set(state) == set(local)
    for name in local:
        torch.testing.assert_close(state[name], local[name], atol=1e-4, rtol=1e-4, msg=name)
    # the factors the worker converts to are those of the layers it trained, and the checkpoint
    # keeps only the small basis state
    assert set(factors) == set(layers)
    for name, layer in layers.items():
        up, down = factors[name]
        assert up.shape[1] <= layer.kept + layer.new_bases
        torch.testing.assert_close(up @ down, layer.dense_weight().detach(), atol=1e-3, rtol=1e-3, msg=name)
    assert not list(tmp_path.rglob("factors.pt")) and list(tmp_path.rglob("basis.pt"))

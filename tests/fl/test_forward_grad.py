"""The forward gradient is unbiased, and its quality falls as 1/d: the reason for Spry's split."""

import torch
import torch.nn.functional as F

from core.models import AdapterConfig, ModelConfig, build_classifier, trainable_state
from core.seeding import generator
from fl.forward_grad import forward_gradient
from fl.local import classification_loss
from tests.fl.tiny import random_batches, tiny_model


def _setup():
    return (*tiny_model(), random_batches(1, "batch")[0])


def _true_grad(model, params, batch, names):
    leaves = {k: params[k].clone().requires_grad_(True) for k in names}
    loss = classification_loss(model, {**params, **leaves}, batch)
    return torch.autograd.grad(loss, list(leaves.values())), loss


def _flat(ts):
    return torch.cat([t.reshape(-1) for t in ts])


def test_mean_of_jvp_times_v_approaches_the_gradient():
    # The head: d = 2*32 + 2 = 66. Averaging N estimates gives cos^2 ≈ 1 / (1 + (d+1)/N)
    # (each estimate's variance is about (d+1)|g|^2); N = 4000 puts cos near 0.99, well
    # above the 0.9 bar with room for sampling noise.
    model, params, batch = _setup()
    names = ["head.weight", "head.bias"]
    true, loss = _true_grad(model, params, batch, names)
    with torch.no_grad():
        fl, est, _ = forward_gradient(lambda p: classification_loss(model, {**params, **p}, batch),
                                      {k: params[k] for k in names}, 4000, generator("cpu", "v"))
    assert torch.allclose(fl, loss.detach(), atol=1e-5)  # jvp returns the same loss
    cos = F.cosine_similarity(_flat(true), _flat([est[k] for k in names]), dim=0)
    assert cos > 0.9, float(cos)


def test_single_estimate_is_better_on_smaller_subsets():
    # E[cos^2] ≈ 1/d for one K=1 estimate: split chunks give far better directions than all tensors.
    model, params, batch = _setup()
    subsets = {"one pair": list(params)[:2], "all": list(params)}

    def mean_cos2(names, trials=200):
        true, _ = _true_grad(model, params, batch, names)
        gen = generator("cpu", "trial", len(names))
        vals = []
        with torch.no_grad():
            for _ in range(trials):
                _, est, _ = forward_gradient(lambda p: classification_loss(model, {**params, **p}, batch),
                                             {k: params[k] for k in names}, 1, gen)
                vals.append(float(F.cosine_similarity(_flat(true), _flat([est[k] for k in names]), dim=0)) ** 2)
        return sum(vals) / len(vals)

    d_pair = sum(params[k].numel() for k in subsets["one pair"])
    d_all = sum(params[k].numel() for k in subsets["all"])
    c_pair, c_all = mean_cos2(subsets["one pair"]), mean_cos2(subsets["all"])
    assert c_pair > 2 * c_all
    assert 0.3 / d_pair < c_pair < 3 / d_pair and 0.3 / d_all < c_all < 3 / d_all


def test_sdpa_models_run_forward_mode_through_the_math_kernel():
    model = build_classifier(ModelConfig(name="tiny-bert", attn_implementation="sdpa"), AdapterConfig(r=2), 2, seed=0)
    params = trainable_state(model)
    model.requires_grad_(False)
    batch = {"input_ids": torch.randint(1000, 3000, (4, 8), generator=generator("cpu", "b")),
             "attention_mask": torch.ones(4, 8, dtype=torch.long), "labels": torch.tensor([0, 1, 0, 1])}
    with torch.no_grad():
        loss, grad, d = forward_gradient(lambda p: classification_loss(model, {**params, **p}, batch),
                                         {"head.weight": params["head.weight"]}, 2, generator("cpu", "v"))
    assert torch.isfinite(loss) and len(d) == 2 and grad["head.weight"].abs().sum() > 0

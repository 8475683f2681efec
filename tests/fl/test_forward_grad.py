"""The forward gradient is unbiased, and its quality falls as 1/d: the reason for Spry's split."""

import pytest
import torch
import torch.nn.functional as F
import torch.utils._python_dispatch
from torch.func import jvp

from core.models import AdapterConfig, ModelConfig, build_classifier, trainable_state
from core.seeding import generator
from fl.forward_grad import forward_gradient, fused_jvp
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


def _random_lora_setup(name: str, targets: list[str]):
    """A tiny model whose LoRA B is nonzero (else every A's tangent would vanish), with a padded batch."""
    model = build_classifier(ModelConfig(name=name, max_length=16), AdapterConfig(r=2, alpha=2.0, target_modules=targets),
                             2, seed=0)
    g = generator("cpu", "fused", name)
    params = {k: 0.1 * torch.randn(p.shape, generator=g) for k, p in trainable_state(model).items()}
    model.requires_grad_(False)
    batch = {"input_ids": torch.randint(1000, 3000, (3, 16), generator=g),
             "attention_mask": torch.ones(3, 16, dtype=torch.long), "labels": torch.tensor([0, 1, 1])}
    batch["attention_mask"][0, 10:] = 0
    return model, params, batch


@pytest.mark.parametrize("name,targets", [("tiny-llama", ["q_proj", "v_proj", "gate_proj"]),
                                          ("tiny-bert", ["query", "value"])])
def test_fused_jvp_equals_torch_func_jvp(name, targets):
    # The fused implementation (forward_ad, frozen linears on [x; ẋ]) against torch.func.jvp:
    # same loss and directional derivative, and so the same estimate and update, per group.
    model, params, batch = _random_lora_setup(name, targets)
    keys = list(params)
    primals, tangents = tuple(params.values()), tuple(torch.randn_like(p) for p in params.values())

    def f(*t):
        return classification_loss(model, dict(zip(keys, t)), batch)

    with torch.no_grad():
        ref, fused = jvp(f, primals, tangents), fused_jvp(f, primals, tangents)
    assert abs(float(ref[1])) > 1e-3  # a real derivative, not two zeros
    torch.testing.assert_close(fused[0], ref[0], rtol=0, atol=0)  # bit for bit on these models
    torch.testing.assert_close(fused[1], ref[1], rtol=0, atol=0)
    groups = [[k for k in keys if not k.startswith("head.")], ["head.weight", "head.bias"]]
    out = {impl: forward_gradient(lambda p: classification_loss(model, p, batch), params, 2,
                                  generator("cpu", "v", name), groups, jvp_impl=impl) for impl in ("func", "fused")}
    # The whole step: equal to float rounding (a group's pass can round differently in its last
    # bit, as two runs of different but equal-valued kernels do).
    assert len(out["func"][2]) == len(out["fused"][2]) == 4
    torch.testing.assert_close(torch.tensor(out["fused"][2]), torch.tensor(out["func"][2]), rtol=1e-5, atol=1e-8)
    for k in keys:
        torch.testing.assert_close(out["fused"][1][k], out["func"][1][k], rtol=1e-5, atol=1e-8)


def test_fused_jvp_takes_one_product_per_frozen_linear():
    # What the fusion is for. Under forward AD (torch.func.jvp, and forward_ad dual tensors alike,
    # torch 2.13) a frozen linear whose input carries a tangent costs three matrix products (the
    # linear's own, and the product rule's two, one of which recomputes the primal); fused, it is
    # one product of twice the rows. tiny-llama with LoRA on q/v only.
    model, params, batch = _random_lora_setup("tiny-llama", ["q_proj", "v_proj"])
    keys = list(params)
    primals, tangents = tuple(params.values()), tuple(torch.randn_like(p) for p in params.values())

    def f(*t):
        return classification_loss(model, dict(zip(keys, t)), batch)

    counts, tall = {}, {}
    for impl, fn in (("func", jvp), ("fused", fused_jvp)):
        with torch.no_grad(), _CountProducts() as c:
            fn(f, primals, tangents)
        counts[impl], tall[impl] = c.n, c.tall
    # layer 0: q, k, v's inputs carry no tangent yet (q and v get theirs from their LoRA). After
    # that every hidden state carries one: layer 0's o, gate, up, down, and layer 1's 7 projections.
    frozen_with_tangent = 4 + 7
    assert tall == {"func": 0, "fused": frozen_with_tangent}, tall
    assert counts["func"] - counts["fused"] == 2 * frozen_with_tangent, counts


class _CountProducts(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the matrix products (mm, addmm, bmm) that reach the kernels, and the mm's of the
    batch's tokens stacked twice (3 x 16 tokens -> 96 rows: [x; ẋ])."""

    PRODUCTS = ("aten::mm", "aten::addmm", "aten::bmm")

    def __enter__(self):
        self.n, self.tall = 0, 0
        return super().__enter__()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func._schema.name in self.PRODUCTS:
            self.n += 1
            self.tall += func._schema.name == "aten::mm" and args[0].shape[0] == 2 * 3 * 16
        return func(*args, **(kwargs or {}))

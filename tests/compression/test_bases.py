"""Basel's basis layers, pruning to a budget, and re-factorisation, on small matrices and a tiny Llama."""

import pytest
import torch
import torch.nn as nn

from compression.bases import BasisLinear, basis_layers, matching_linears, to_basis_model
from compression.lowrank import low_rank_params, refactor_model
from compression.prune import PruneSchedule, budget_for, factorized_params, plan_masks, prune_to
from core.config import ConfigError

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def tiny_llama(tie: bool = True, seed: int = 0):
    from transformers import AutoModelForCausalLM

    from core.models import tiny_config

    cfg = tiny_config("tiny-llama")
    cfg.tie_word_embeddings = tie
    cfg.vocab_size = 512
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(cfg).eval()


def test_decompose_then_recompose_reproduces_the_layer():
    torch.manual_seed(0)
    lin = nn.Linear(24, 40)
    layer = BasisLinear(lin, new_bases=4)
    x = torch.randn(5, 24)
    torch.testing.assert_close(layer(x), lin(x), atol=1e-5, rtol=1e-5)  # A = 0: the new bases add nothing yet
    torch.testing.assert_close(layer.dense_weight(), lin.weight, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer.coefficients, torch.linalg.svdvals(lin.weight.double()).float(), atol=1e-5, rtol=1e-5)
    assert {n for n, p in layer.named_parameters() if p.requires_grad} == {"w", "A", "B"}


def _perturbed_basis_model(seed=0, new_bases=2):
    model = tiny_llama()
    layers = to_basis_model(model, TARGETS, new_bases=new_bases, seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # as if trained: coefficients moved, new bases non-zero
        for layer in layers.values():
            layer.w.mul_(torch.rand(layer.w.shape, generator=g) * 1.5 + 0.25)
            layer.A.normal_(0, 0.05, generator=g)
    return model, layers


@pytest.mark.parametrize("ratio", [0.75, 0.5, 0.3])
def test_pruning_fits_the_budget_within_one_basis_and_keeps_prefixes(ratio):
    _, layers = _perturbed_basis_model()
    budget = budget_for(layers, ratio)
    reached = prune_to(layers, budget)
    assert reached == factorized_params(layers)
    assert budget - max(l.in_features + l.out_features for l in layers.values()) < reached <= budget
    for layer in layers.values():
        c = layer.w.detach().square()
        kept = layer.mask > 0
        assert kept.any()
        if (~kept).any():  # every kept basis outweighs every pruned one in its layer
            assert c[kept].min() >= c[~kept].max()


def test_progressive_pruning_only_removes_and_ends_on_the_budget():
    _, layers = _perturbed_basis_model(seed=1)
    final = budget_for(layers, 0.4)
    sched = PruneSchedule(total_steps=30, prune_steps=5, start_params=factorized_params(layers), final_budget=final)
    plan = sched.steps()
    assert len(plan) == 5 and min(plan) >= 10 and max(plan) < 30  # none in the warm-up; steps after the last
    assert list(plan.values())[-1] == final
    before = {n: l.mask.clone() for n, l in layers.items()}
    for budget in plan.values():
        prune_to(layers, budget)
        for n, l in layers.items():
            assert bool((l.mask <= before[n]).all())  # a pruned basis never comes back
            before[n] = l.mask.clone()
    assert factorized_params(layers) <= final
    with pytest.raises(ConfigError, match=r"'data': 6 training steps leave 4 after the warm-up, fewer than prune_steps \+ 1 = 6"):
        PruneSchedule(total_steps=6, prune_steps=5, start_params=100, final_budget=50)


def test_refactorised_model_gives_the_pruned_models_logits():
    model, layers = _perturbed_basis_model(seed=2)
    prune_to(layers, budget_for(layers, 0.5))
    ids = torch.randint(0, 512, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(input_ids=ids).logits
    ranks = refactor_model(model)
    assert not basis_layers(model) and len(ranks) == len(layers)
    with torch.no_grad():
        got = model(input_ids=ids).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert low_rank_params(model) <= budget_for({n: l for n, l in layers.items()}, 0.5)


def test_bad_module_names_and_tied_heads_are_refused():
    model = tiny_llama()
    with pytest.raises(ConfigError, match="'qkv' matches no nn.Linear in the model; its linear layers: .*q_proj"):
        matching_linears(model, ["qkv"])
    with pytest.raises(ConfigError, match="lm_head shares its weight with the input embeddings"):
        to_basis_model(model, ["q_proj", "lm_head"], new_bases=0)
    untied = tiny_llama(tie=False)
    assert "lm_head" in to_basis_model(untied, ["lm_head"], new_bases=0)
    with pytest.raises(ConfigError, match="'keep_ratio': must be in \\(0, 1\\], got 1.5"):
        budget_for(basis_layers(untied), 1.5)
    with pytest.raises(ConfigError, match="below the .* that one basis per layer"):
        plan_masks(basis_layers(untied), 10)


@pytest.mark.parametrize("shape,kept,new", [((48, 80), 10, 3), ((80, 48), 47, 0), ((64, 64), 5, 4)])
def test_basis_svd_from_the_factors_is_the_dense_svd(shape, kept, new):
    from compression.lowrank import basis_svd

    torch.manual_seed(0)
    layer = BasisLinear(nn.Linear(shape[1], shape[0], dtype=torch.float64), new_bases=new, seed=1)
    with torch.no_grad():
        layer.mask[kept:] = 0
        layer.w.mul_(torch.rand_like(layer.w) + 0.5)
        layer.A.normal_()
    u, s, v = basis_svd(layer)
    dense = layer.dense_weight().detach().double()
    want = torch.linalg.svdvals(dense)
    r = kept + new
    torch.testing.assert_close(s[:r], want[:r], atol=1e-10, rtol=1e-10)
    assert torch.all(want[r:] < 1e-10 * want[0]) and torch.all(s[r:] < 1e-10 * want[0])
    torch.testing.assert_close((u * s) @ v.T, dense, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(u.T @ u, torch.eye(u.shape[1], dtype=u.dtype), atol=1e-10, rtol=0)

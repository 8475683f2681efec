"""ReFusion's candidates against hand-computed values, the integrator, and the bi-level step."""

import math

import pytest
import torch

from core.config import ConfigError
from core.models import ModelConfig, load_backbone
from retrieval.bilevel import bilevel_step
from retrieval.fusion import OrderedMask, Reranker
from retrieval.integrator import CANDIDATES, RetrievalIntegrator

Z = torch.tensor([[[1.0, 2.0], [3.0, -1.0], [0.0, 4.0]]])  # batch 1, k 3, D 2


def test_reranker_matches_a_hand_computation():
    rr = Reranker(3)
    with torch.no_grad():
        rr.R.copy_(torch.tensor([0.0, math.log(2.0), 0.0]))  # softmax = [1/4, 1/2, 1/4]
    want = (0.25 * Z[0, 0] + 0.5 * Z[0, 1] + 0.25 * Z[0, 2]) / 3
    torch.testing.assert_close(rr(Z)[0], want)


def test_ordered_mask_samples_over_ranks_while_training_and_is_deterministic_at_evaluation():
    om = OrderedMask(3, 2).eval()
    torch.testing.assert_close(om(Z), om(Z))  # deterministic at evaluation
    torch.testing.assert_close(OrderedMask(3, 2).eval()(Z), om(Z))  # the same fixed draws in a new module
    om.train()
    with torch.no_grad():
        om.beta.normal_(0, 2)
    m = om.mask()
    assert m.shape == (3, 2)
    torch.testing.assert_close(m[0], torch.ones(2))  # the top rank is always kept: sum over ranks of c is 1
    assert bool((m[1:] <= m[:-1] + 1e-6).all())  # nested: a lower rank is kept no more than a higher one
    assert not torch.equal(om.mask(), m)  # sampled while training


def _training_mask_mean(om: OrderedMask, draws: int) -> torch.Tensor:
    om.train()
    with torch.no_grad():
        mean = sum(om.mask() for _ in range(draws)) / draws
    om.eval()
    return mean


@pytest.mark.parametrize("beta_std", [0.0, 1.0, 3.0])
def test_the_evaluation_mask_is_the_expected_training_mask(beta_std):
    """k = 16 as in the benchmark: at evaluation the mask has the training mask's expected sum
    and the same profile over ranks (L1 distance of the normalised profiles), within 5%, per dimension (at beta = 0 training keeps about
    5.8 ranks' worth; the mean of the hard choice, c = q, keeps about 2)."""
    om = OrderedMask(16, 48, seed=3)
    with torch.no_grad():
        om.beta.normal_(0, beta_std, generator=torch.Generator().manual_seed(4))
    want = _training_mask_mean(om, 2000)
    with torch.no_grad():
        got = om.mask()
    sums_w, sums_g = want.sum(0), got.sum(0)
    assert torch.all((sums_g - sums_w).abs() <= 0.05 * sums_w)
    # the shape: the profile over ranks, normalised to sum 1; at most 5% of it placed differently
    shape_w, shape_g = want / sums_w, got / sums_g
    assert torch.all((shape_g - shape_w).abs().sum(0) <= 0.05)
    if beta_std == 0.0:
        assert float(sums_w.mean()) == pytest.approx(5.8, abs=0.2)
    # the eval path inside a graph (grad enabled) gives the same mask and a gradient for beta
    with torch.enable_grad():
        m = om.mask()
        m.sum().backward()
    torch.testing.assert_close(m.detach(), got)
    assert om.beta.grad is not None and om.beta.grad.abs().sum() > 0


def _tiny(choice="search", k=3, dim=None):
    backbone = load_backbone(ModelConfig(name="tiny-bert"), seed=0)
    integ = RetrievalIntegrator(backbone, k=k, retrieval_dim=dim or backbone.config.hidden_size, choice=choice)
    return backbone, integ


def test_zero_retrievals_leave_the_model_unchanged_and_fusion_touches_cls_only():
    ids = torch.randint(1000, 2000, (2, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    plain = load_backbone(ModelConfig(name="tiny-bert"), seed=0)
    want = plain(input_ids=ids, attention_mask=mask).last_hidden_state
    backbone, integ = _tiny()
    assert len(integ.names) == 2 * plain.config.num_hidden_layers  # every key and value
    integ.set_retrievals(torch.zeros(2, 3, backbone.config.hidden_size))
    torch.testing.assert_close(backbone(input_ids=ids, attention_mask=mask).last_hidden_state, want)
    with torch.no_grad():
        for m in integ.modules_.values():
            m.alpha.copy_(torch.tensor([-9.0, 9.0, -9.0]))  # all reranker
    integ.set_retrievals(torch.randn(2, 3, backbone.config.hidden_size, generator=torch.Generator().manual_seed(1)))
    assert not torch.allclose(backbone(input_ids=ids, attention_mask=mask).last_hidden_state, want)
    assert set(integ.discretize().values()) == {"reranker"}


def test_a_projection_maps_other_widths_and_unsupported_families_are_named():
    backbone, integ = _tiny(dim=384)
    assert isinstance(integ.project, torch.nn.Linear) and integ.project.in_features == 384
    llama = load_backbone(ModelConfig(name="tiny-llama"), seed=0)
    with pytest.raises(ConfigError, match="llama encoder has no supported key/value projections; supported families: bert"):
        RetrievalIntegrator(llama, k=3, retrieval_dim=32)


def test_alpha_learns_on_dev_and_dev_gradients_never_reach_the_weights():
    torch.manual_seed(0)
    backbone, integ = _tiny()
    backbone.eval()  # expected ordered masks: the same loss each time it is computed
    head = torch.nn.Linear(backbone.config.hidden_size, 2)
    alphas = integ.arch_parameters()
    weights = [p for p in backbone.parameters() if not any(p is a for a in alphas)] + list(head.parameters())
    for p in [*weights, *alphas]:
        p.requires_grad_(True)
    g = torch.Generator().manual_seed(2)

    def batch():
        return {"ids": torch.randint(1000, 2000, (4, 6), generator=g), "y": torch.randint(0, 2, (4,), generator=g),
                "z": torch.randn(4, 3, backbone.config.hidden_size, generator=g)}

    def loss_on(b):
        integ.set_retrievals(b["z"])
        h = backbone(input_ids=b["ids"]).last_hidden_state[:, 0]
        return torch.nn.functional.cross_entropy(head(h), b["y"])

    train, dev = batch(), batch()
    seen = {}
    opt_w = torch.optim.SGD(weights, lr=0.0)
    step = opt_w.step
    opt_w.step = lambda: (seen.setdefault("g", [p.grad.clone() if p.grad is not None else None for p in weights]), step())
    opt_a = torch.optim.SGD(alphas, lr=1.0)
    before = [a.detach().clone() for a in alphas]
    bilevel_step([*weights, *alphas], loss_on, train, dev, opt_w, opt_a)
    assert any(not torch.equal(a, b) for a, b in zip(alphas, before))  # alpha moved
    assert all(p.grad is None for p in weights + alphas)
    # the weights' update used exactly the train-loss gradients at the new alpha (lr 0 left the
    # weights as they were, so recomputing them here gives what the step should have seen)
    loss_on(train).backward()
    want = [p.grad.clone() if p.grad is not None else None for p in weights]
    for got, exp in zip(seen["g"], want):
        if exp is None:
            assert got is None
        else:
            torch.testing.assert_close(got, exp)
    assert set(CANDIDATES) == {"none", "reranker", "ordered_mask"}

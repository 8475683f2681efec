"""The ReFusion arms on a tiny BERT: fitting learns, the search moves alpha and fixes choices,
fusion costs few FLOPs next to concatenating the retrieved text."""

import numpy as np
import torch

from core.models import ModelConfig
from retrieval.integrator import CANDIDATES
from retrieval.model import RetrievalClassifier, concatenated, encode, tokenizer_for
import pytest

from core.config import ConfigError
from retrieval.train import FitConfig, accuracy, calibrate_gains, fit, flops_per_example, init_head, search

CFG = ModelConfig(name="tiny-bert", max_length=16)


def _data(n=32, k=4, seed=0):
    """Labels readable from the retrievals only: class 1 examples retrieve vectors shifted by +1."""
    g = np.random.default_rng(seed)
    y = np.arange(n) % 2
    z = g.standard_normal((n, k, 32)).astype(np.float32) * 0.1 + y[:, None, None] * 1.0
    texts = ["the same film again"] * n
    return encode(texts, y, tokenizer_for(CFG), 16, z)


def test_fusion_reads_the_retrievals_and_no_retrieval_cannot():
    train = _data()
    fused = RetrievalClassifier(CFG, 2, k=4, retrieval_dim=32, choice="reranker", seed=0)
    fit(fused, train, FitConfig(steps=40, batch_size=16, lr=1e-3, fusion_lr=1e-2), seed=0)
    assert accuracy(fused, train) == 1.0
    plain = RetrievalClassifier(CFG, 2, k=4, retrieval_dim=32, choice="none", seed=0)
    fit(plain, encode(["the same film again"] * 32, np.arange(32) % 2, tokenizer_for(CFG), 16), FitConfig(steps=40), seed=0)
    assert accuracy(plain, encode(["the same film again"] * 32, np.arange(32) % 2, tokenizer_for(CFG), 16)) == 0.5


def test_init_head_makes_a_cosine_nearest_centroid_classifier_of_the_fused_embeddings():
    train = _data()
    model = RetrievalClassifier(CFG, 2, k=4, retrieval_dim=32, choice="reranker", seed=0)
    init_head(model, train, scale=20.0, batch_size=5)  # batching must not matter
    model.integrator.set_retrievals(train.z)
    emb = model.classifier.embed(train.input_ids, train.attention_mask).detach().double()
    centroids = torch.nn.functional.normalize(torch.stack([emb[train.labels == c].mean(0) for c in (0, 1)]), dim=1)
    logits = model(train.input_ids, train.attention_mask, train.z).detach().double()
    assert torch.allclose(logits, 20.0 * emb @ centroids.T, atol=1e-4)
    assert accuracy(model, train) == 1.0  # the classes are apart in the fused embedding before any step


def test_search_moves_alpha_and_fixes_one_candidate_per_module():
    train, dev = _data(seed=1), _data(seed=2)
    model = RetrievalClassifier(CFG, 2, k=4, retrieval_dim=32, choice="search", seed=0)
    before = [a.detach().clone() for a in model.integrator.arch_parameters()]
    choices = search(model, train, dev, FitConfig(search_steps=10, batch_size=16), seed=0)
    assert any(not torch.equal(a, b) for a, b in zip(model.integrator.arch_parameters(), before))
    assert len(choices) == 4 and set(choices.values()) <= set(CANDIDATES)
    assert all(m.choice in CANDIDATES for m in model.integrator.modules_.values())  # no mixing any more


def test_as_released_alpha_stays_at_its_random_init_and_picks_its_argmax():
    """The sixth arm, ReFusion as released: alpha is a seeded Xavier draw that never trains; the
    search steps still train the weights of the mix, and the choice is the init's argmax."""
    from retrieval.train import train_arm

    train, dev = _data(seed=1), _data(seed=2)
    model = RetrievalClassifier(CFG, 2, k=4, retrieval_dim=32, choice="search", seed=0)
    init_choices = model.integrator.freeze_alpha(seed=5)
    before = [a.detach().clone() for a in model.integrator.arch_parameters()]
    assert len({tuple(b.tolist()) for b in before}) == len(before) and all(b.abs().max() > 0 for b in before)
    head = model.classifier.head.weight.detach().clone()
    history = train_arm(model, train, dev, FitConfig(steps=6, search_steps=3, batch_size=16, eval_every=100), seed=0,
                        searched=True, train_alpha=False)
    assert all(torch.equal(a, b) for a, b in zip(model.integrator.arch_parameters(), before))
    assert model.integrator.choices() == init_choices
    assert init_choices == {n: CANDIDATES[int(b.argmax())] for n, b in zip(model.integrator.names, before)}
    assert not torch.equal(model.classifier.head.weight, head) and history[-1]["step"] == 3
    # the same seed draws the same alpha
    again = RetrievalClassifier(CFG, 2, k=4, retrieval_dim=32, choice="search", seed=0)
    assert again.integrator.freeze_alpha(seed=5) == init_choices


def test_fusion_adds_few_flops_and_concatenation_many():
    data = _data()
    plain = RetrievalClassifier(CFG, 2, k=4, retrieval_dim=32, choice="none", seed=0)
    fused = RetrievalClassifier(CFG, 2, k=4, retrieval_dim=32, choice="ordered_mask", seed=0)
    base = flops_per_example(plain, data)
    assert base <= flops_per_example(fused, data) < 1.2 * base  # the counter sees matmuls; fusion is elementwise
    tok = tokenizer_for(CFG)
    texts = concatenated(["a film"], np.array([[0, 1, 2, 3]]), ["a long retrieved sentence about films"] * 4)
    long = encode(texts, np.array([0]), tok, 64)
    assert flops_per_example(plain, long) > 3 * base


def test_calibrated_gains_put_the_mean_retrieval_at_the_asked_fraction_of_the_cls_output():
    train = _data()
    model = RetrievalClassifier(CFG, 2, k=4, retrieval_dim=32, choice="search", seed=0)
    gains = calibrate_gains(model, train, scale=0.5)
    assert set(gains) == set(model.integrator.names)
    assert all(m.choice == "search" for m in model.integrator.modules_.values())  # restored after measuring
    # measure by hand: each projection's CLS output, unfused, and the uniform reranker's r
    cls_norms = {}
    hooks = [m.linear.register_forward_hook(lambda mod, i, out, n=n: cls_norms.__setitem__(n, out[:, 0].norm(dim=-1).mean()))
             for n, m in zip(model.integrator.names, model.integrator.modules_.values())]
    model.integrator.set_retrievals(None)
    model.eval()
    with torch.no_grad():
        model.classifier(train.input_ids, train.attention_mask)
    for h in hooks:
        h.remove()
    r = (train.z.mean(dim=1) / 4).norm(dim=-1).mean()
    for name, m in zip(model.integrator.names, model.integrator.modules_.values()):
        torch.testing.assert_close(m.gain.detach() * r, 0.5 * cls_norms[name], rtol=1e-4, atol=0)
    assert len(set(gains.values())) > 1  # one gain per module, not one for all
    with pytest.raises(ConfigError, match="fusion_scale"):
        calibrate_gains(model, train, scale=0.0)
    with pytest.raises(ConfigError, match="fusion_scale"):
        FitConfig(fusion_scale=-1.0).validate()


def test_every_arm_gets_the_same_number_of_weight_updates():
    """The searched arm's search steps are part of its budget (each one updates the weights), so
    it is never compared after more training than no retrieval. Counted on the optimizers that
    hold the head's weight, across both phases."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from retrieval.train import train_arm

    train, dev = _data(seed=1), _data(seed=2)
    cfg = FitConfig(steps=7, search_steps=3, batch_size=16, eval_every=100)
    counts = {}
    for arm, searched in (("none", False), ("refusion", True)):
        model = RetrievalClassifier(CFG, 2, k=4, retrieval_dim=32, choice="search" if searched else "none", seed=0)
        head = model.classifier.head.weight
        n = [0]

        def hook(opt, args, kwargs, head=head, n=n):
            n[0] += any(p is head for g in opt.param_groups for p in g["params"])

        handle = register_optimizer_step_post_hook(hook)
        try:
            history = train_arm(model, train, dev, cfg, seed=0, searched=searched)
        finally:
            handle.remove()
        counts[arm] = n[0]
        assert history[-1]["dev_accuracy"] is not None
    assert counts == {"none": 7, "refusion": 7}


def test_the_search_must_leave_steps_after_it():
    with pytest.raises(ConfigError, match="search_steps"):
        FitConfig(steps=60, search_steps=60).validate()

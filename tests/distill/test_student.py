import math

import pytest
import torch
import torch.nn.functional as F

from core.config import ConfigError, from_dict
from core.models import AdapterConfig, ModelConfig, build_classifier, load_tokenizer
from core.seeding import generator
from distill.config import StudentConfig
from distill.energy import energy_score
from distill.student import Student, symmetric_cross_entropy


def _reference_sce(logits, labels, alpha, beta):
    # the formula as written: alpha * CE + beta * (-sum_c p_c log clamp(onehot_c, 1e-4, 1))
    p = logits.softmax(-1)
    onehot = F.one_hot(labels, logits.shape[-1]).double()
    ce = -(onehot * p.log()).sum(-1).mean()
    rce = -(p * onehot.clamp(1e-4, 1.0).log()).sum(-1).mean()
    return alpha * ce + beta * rce


def test_sce_matches_the_reference_formula():
    logits = torch.randn(6, 3, generator=generator("cpu", "sce"), dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 2, 1, 0])
    got = symmetric_cross_entropy(logits, labels, alpha=0.1, beta=1.0)
    assert got.item() == pytest.approx(_reference_sce(logits, labels, 0.1, 1.0).item(), rel=1e-5)
    # RCE alone is 9.21 (1 - p_y)
    p_y = logits.softmax(-1)[torch.arange(6), labels]
    rce = symmetric_cross_entropy(logits, labels, alpha=0.0, beta=1.0)
    assert rce.item() == pytest.approx((-math.log(1e-4) * (1 - p_y)).mean().item(), rel=1e-5)


def test_rce_vanishes_for_a_confident_correct_prediction_and_is_bounded_when_wrong():
    sure_right = torch.tensor([[30.0, -30.0]])
    sure_wrong = torch.tensor([[-30.0, 30.0]])
    y = torch.tensor([0])
    assert symmetric_cross_entropy(sure_right, y, 0.0, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    assert symmetric_cross_entropy(sure_wrong, y, 0.0, 1.0).item() == pytest.approx(-math.log(1e-4), rel=1e-6)
    assert F.cross_entropy(sure_wrong, y).item() > 50  # what CE charges the same noisy label


TEXTS = ["good great wonderful", "great fun, good", "wonderful and good", "bad awful boring",
         "awful, bad mess", "boring bad film"]
LABELS = [1, 1, 1, 0, 0, 0]


def _cfg(**kw) -> StudentConfig:
    data = {"model": {"name": "tiny-bert", "max_length": 16}, "adapter": {"type": "head"}, "lr": 0.05,
            "batch_size": 2}
    data.update(kw)
    return from_dict(StudentConfig, data)


@pytest.mark.parametrize("loss", ["ce", "sce"])
def test_training_fits_a_separable_toy_set_and_repeats_with_the_seed(loss):
    a = Student.build(_cfg(loss=loss), ["neg", "pos"], seed=3)
    before = a.evaluate(TEXTS, LABELS)
    m = a.train(TEXTS, LABELS, epochs=30, seed=1)
    after = a.evaluate(TEXTS, LABELS)
    assert after["loss"] < before["loss"] and after["accuracy"] == 1.0
    assert m["train_samples"] == 6 and a.steps == 30 * 3
    b = Student.build(_cfg(loss=loss), ["neg", "pos"], seed=3)
    b.train(TEXTS, LABELS, epochs=30, seed=1)
    assert torch.equal(a.logits(TEXTS), b.logits(TEXTS))
    c = Student.build(_cfg(loss=loss), ["neg", "pos"], seed=3)
    c.train(TEXTS, LABELS, epochs=30, seed=2)  # another shuffle, other weights
    assert not torch.equal(a.logits(TEXTS), c.logits(TEXTS))


def test_energies_are_the_energy_of_the_logits_and_batching_does_not_matter():
    s = Student.build(_cfg(eval_batch_size=4), ["neg", "pos"], seed=0)
    logits = s.logits(TEXTS)
    assert logits.shape == (6, 2)
    assert torch.allclose(s.energies(TEXTS, 2.0), energy_score(logits, 2.0))
    s.cfg.eval_batch_size = 1
    assert torch.allclose(s.logits(TEXTS), logits, atol=1e-5)
    assert s.logits([]).shape == (0, 2)


def test_a_student_whose_outputs_do_not_match_the_task_is_an_error():
    model = build_classifier(ModelConfig(name="tiny-bert"), AdapterConfig(type="head"), 3, seed=0)
    with pytest.raises(ConfigError) as e:
        Student(model, load_tokenizer("tiny-bert"), _cfg(), ["neg", "pos"])
    assert e.value.key == "student" and "3 outputs" in str(e.value)
    s = Student.build(_cfg(), ["neg", "pos"], seed=0)
    with pytest.raises(ConfigError) as e:
        s.train(TEXTS, [0, 1, 2, 0, 1, 0], epochs=1, seed=0)
    assert e.value.key == "task.label_names"
    with pytest.raises(ValueError):
        s.train([], [], epochs=1, seed=0)


def test_trainable_state_round_trips():
    a = Student.build(_cfg(), ["neg", "pos"], seed=0)
    a.train(TEXTS, LABELS, epochs=2, seed=0)
    # the frozen base is rebuilt the same way (for a random tiny model: from the same seed); only
    # the trainable tensors differ
    b = Student.build(_cfg(), ["neg", "pos"], seed=0)
    assert not torch.equal(a.logits(TEXTS), b.logits(TEXTS))
    b.load_trainable_state(a.trainable_state())
    assert torch.equal(a.logits(TEXTS), b.logits(TEXTS))
    with pytest.raises(ValueError):
        b.load_trainable_state({"head.weight": torch.zeros(2, 32)})


def test_prototype_head_starts_as_a_nearest_centroid_classifier_and_survives_a_restore():
    s = Student.build(_cfg(head_scale=10.0), ["neg", "pos"], seed=0)
    s.init_head(TEXTS, LABELS)
    emb = s.model.embed(**s._encode(TEXTS)).detach().double()
    centroids = F.normalize(torch.stack([emb[3:].mean(0), emb[:3].mean(0)]), dim=1)
    assert torch.allclose(s.logits(TEXTS).double(), 10.0 * emb @ centroids.T, atol=1e-4)
    assert torch.equal(s.model.head.bias.detach(), torch.zeros(2))
    # train() sets it on the first call only; a restored student keeps its saved head
    fresh = Student.build(_cfg(head_scale=10.0), ["neg", "pos"], seed=0)
    fresh.train(TEXTS, LABELS, epochs=1, seed=0)
    assert fresh.head_initialized
    restored = Student.build(_cfg(head_scale=10.0), ["neg", "pos"], seed=0)
    restored.load_trainable_state(fresh.trainable_state())
    assert restored.head_initialized and torch.equal(restored.logits(TEXTS), fresh.logits(TEXTS))


def test_random_head_init_keeps_the_classifier_initialisation():
    a = Student.build(_cfg(head_init="random"), ["neg", "pos"], seed=0)
    b = Student.build(_cfg(head_init="random"), ["neg", "pos"], seed=0)
    a.train(TEXTS, LABELS, epochs=1, seed=0, step_fn=lambda loss: None)  # no steps taken: the head is untouched
    assert torch.equal(a.logits(TEXTS), b.logits(TEXTS))
    with pytest.raises(ConfigError) as e:
        _cfg(head_scale=0.0)
    assert e.value.key.endswith("head_scale")

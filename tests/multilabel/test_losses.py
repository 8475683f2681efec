"""The losses against hand-written formulas."""

import math

import torch

from multilabel.losses import focal_loss, pos_weight_bce, pos_weights, weighted_bce


def _hand_weighted_bce(logits, y, w):
    total = 0.0
    for i in range(logits.shape[0]):
        for l in range(logits.shape[1]):
            p = 1 / (1 + math.exp(-float(logits[i, l])))
            total += -float(w[l]) * (float(y[i, l]) * math.log(p) + (1 - float(y[i, l])) * math.log(1 - p))
    return total / logits.shape[0]


def test_weighted_bce_matches_the_hand_formula():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=g, dtype=torch.float64) * 3
    y = (torch.rand(5, 4, generator=g) > 0.6).double()
    w = torch.tensor([0.2, 1.0, 3.5, 0.0], dtype=torch.float64)
    assert math.isclose(float(weighted_bce(logits, y, w)), _hand_weighted_bce(logits, y, w), rel_tol=1e-10)
    assert math.isclose(float(weighted_bce(logits, y)), _hand_weighted_bce(logits, y, torch.ones(4)), rel_tol=1e-10)


def test_weighted_bce_gradient_scales_with_the_weight():
    logits = torch.zeros(3, 2, requires_grad=True)
    y = torch.tensor([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    weighted_bce(logits, y, torch.tensor([1.0, 4.0])).backward()
    g = logits.grad
    # d/dz of BCE at z=0 is (0.5 - y) / n; label 1 has 4 times the weight
    assert torch.allclose(g[:, 0], (0.5 - y[:, 0]) / 3)
    assert torch.allclose(g[:, 1], 4 * (0.5 - y[:, 1]) / 3)


def test_pos_weight_bce_and_the_weights():
    y = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    pw = pos_weights(y, cap=2.0)
    assert torch.allclose(pw, torch.tensor([2.0, 2.0]))  # 3 negatives / 1 positive, capped at 2
    assert torch.allclose(pos_weights(y, cap=10.0), torch.tensor([3.0, 3.0]))
    logits = torch.tensor([[0.3, -1.0], [2.0, 0.1], [-0.5, 0.7], [0.0, 0.0]], dtype=torch.float64)
    pw = torch.tensor([3.0, 0.5], dtype=torch.float64)
    p = torch.sigmoid(logits)
    hand = -(pw * y * torch.log(p) + (1 - y) * torch.log(1 - p)).sum(1).mean()
    assert torch.allclose(pos_weight_bce(logits, y.double(), pw), hand)


def test_focal_loss_hand_formula_and_gamma_zero_is_bce():
    logits = torch.tensor([[2.0, -1.0, 0.5]], dtype=torch.float64)
    y = torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64)
    p = torch.sigmoid(logits)
    pt = torch.where(y == 1, p, 1 - p)
    hand = (-(1 - pt) ** 2 * torch.log(pt)).sum()
    assert torch.allclose(focal_loss(logits, y, gamma=2.0), hand)
    alpha_t = torch.where(y == 1, torch.tensor(0.25, dtype=torch.float64), torch.tensor(0.75, dtype=torch.float64))
    assert torch.allclose(focal_loss(logits, y, gamma=2.0, alpha=0.25), (alpha_t * -(1 - pt) ** 2 * torch.log(pt)).sum())
    assert torch.allclose(focal_loss(logits, y, gamma=0.0), weighted_bce(logits, y))

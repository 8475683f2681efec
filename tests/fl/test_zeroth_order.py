"""Zero-order estimators: exact on a quadratic, unbiased, and the training loop steps by -lr·ĝ."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from core.seeding import generator
from fl.forward_grad import perturbations
from fl.local import classification_loss
from fl.zeroth_order import central_difference_gradient, spsa_gradient, zeroth_order_train
from tests.fl.tiny import random_batches, tiny_model


def _quadratic():
    """L(w) = ½ wᵀAw + bᵀw over two tensors (d = 3 + 4 = 7), float64 so round-off is ~1e-15."""
    g = generator("cpu", "quadratic")
    d = 7
    m = torch.randn(d, d, generator=g, dtype=torch.float64)
    a = m @ m.T + torch.eye(d, dtype=torch.float64)  # SPD
    b = torch.randn(d, generator=g, dtype=torch.float64)
    params = {"u": torch.randn(3, generator=g, dtype=torch.float64),
              "w": torch.randn(2, 2, generator=g, dtype=torch.float64)}

    def flat(t):
        return torch.cat([t[k].reshape(-1) for k in ("u", "w")])

    def loss_fn(p):
        w = flat(p)
        return 0.5 * w @ a @ w + b @ w

    g_flat = a @ flat(params) + b
    return params, loss_fn, flat, a, g_flat


@pytest.mark.parametrize("eps", [1e-3, 1.0])
def test_spsa_is_exact_projection_on_a_quadratic(eps):
    # Central differences cancel the even terms, so on a quadratic p = ∇L·z for any ε.
    params, loss_fn, flat, a, g_true = _quadratic()
    gen, twin = generator("cpu", "z"), generator("cpu", "z")
    for _ in range(5):
        loss, est, (p,) = spsa_gradient(loss_fn, params, eps, gen)
        z = flat(perturbations(params, twin))
        expected = (g_true @ z) * z
        assert p == pytest.approx(float(g_true @ z), rel=1e-4)
        assert torch.allclose(flat(est), expected, rtol=1e-4, atol=1e-10)
        # (L+ + L-)/2 = L(w) + ½ε² zᵀAz exactly on a quadratic.
        assert float(loss) == pytest.approx(float(loss_fn(params) + 0.5 * eps**2 * z @ a @ z), rel=1e-9)


def test_mean_of_spsa_estimates_approaches_the_gradient():
    # Each estimate (g·z)z has covariance |g|²I + ggᵀ (Gaussian z), total variance (d+1)|g|²,
    # so the mean of N gives cos² ≈ 1/(1+(d+1)/N). d = 7: N = 75 is the bare 0.95 line;
    # N = 2000 gives cos ≈ 0.998, far from the bar whatever the seed.
    params, loss_fn, flat, _, g_true = _quadratic()
    gen = generator("cpu", "many")
    n = 2000
    total = torch.zeros_like(g_true)
    for _ in range(n):
        total += flat(spsa_gradient(loss_fn, params, 1e-2, gen)[1])
    cos = F.cosine_similarity(total / n, g_true, dim=0)
    assert cos > 0.95, float(cos)


def test_central_difference_is_the_mean_of_spsa_draws_from_the_same_stream():
    params, loss_fn, flat, _, _ = _quadratic()
    k = 5
    gen_c, gen_s = generator("cpu", "stream"), generator("cpu", "stream")
    loss_c, est_c, ps_c = central_difference_gradient(loss_fn, params, 1e-2, k, gen_c)
    draws = [spsa_gradient(loss_fn, params, 1e-2, gen_s) for _ in range(k)]
    assert ps_c == [d[2][0] for d in draws]
    assert torch.allclose(flat(est_c), torch.stack([flat(d[1]) for d in draws]).mean(0), rtol=1e-12, atol=1e-12)
    assert torch.allclose(loss_c, torch.stack([d[0] for d in draws]).mean())
    assert torch.equal(gen_c.get_state(), gen_s.get_state())  # consumed the same K draws
    assert len(set(ps_c)) == k  # K different directions, not one repeated


def _tiny():
    return (*tiny_model(), random_batches(1, "batch")[0])


def test_one_sgd_step_is_minus_lr_times_the_spsa_estimate():
    model, params, batch = _tiny()
    lr, eps, seed_parts = 0.05, 1e-3, (0, "zo", 1, 3)
    trained, metrics, projections = zeroth_order_train(
        model, params, itertools.repeat(batch), 1, "spsa", eps, 1, "sgd", lr, 0.0, seed_parts)

    # ĝ rebuilt by hand from the step-0 generator: z, two losses, p z.
    z = perturbations(params, generator("cpu", *seed_parts, "step", 0))
    with torch.no_grad():
        plus = classification_loss(model, {k: v + eps * z[k] for k, v in params.items()}, batch)
        minus = classification_loss(model, {k: v - eps * z[k] for k, v in params.items()}, batch)
    p = float((plus - minus) / (2 * eps))
    assert projections == [[pytest.approx(p, rel=1e-6)]]
    assert metrics["loss"] == pytest.approx(float((plus + minus) / 2), rel=1e-6)
    for k in params:
        assert torch.allclose(trained[k] - params[k], -lr * p * z[k], atol=1e-6), k
    assert any(not torch.equal(trained[k], params[k]) for k in params)


def test_a_few_steps_lower_the_loss_on_the_batch():
    # -p z is a descent direction to first order (its slope is -(∇L·z)² ≤ 0), so with a small
    # step each update lowers the loss; over 20 steps on one batch the drop is clear.
    model, params, batch = _tiny()
    with torch.no_grad():
        before = float(classification_loss(model, params, batch))
    for estimator, k in (("spsa", 1), ("central", 4)):
        trained, _, _ = zeroth_order_train(
            model, params, itertools.repeat(batch), 20, estimator, 1e-3, k, "sgd", 0.02, 0.0, (0, estimator))
        with torch.no_grad():
            after = float(classification_loss(model, trained, batch))
        assert after < before - 1e-3, (estimator, before, after)


def test_spsa_refuses_several_perturbations():
    model, params, batch = _tiny()
    with pytest.raises(ValueError, match="central"):
        zeroth_order_train(model, params, itertools.repeat(batch), 1, "spsa", 1e-3, 2, "sgd", 0.1, 0.0, (0,))
    with pytest.raises(ValueError, match="unknown"):
        zeroth_order_train(model, params, itertools.repeat(batch), 1, "mezo", 1e-3, 1, "sgd", 0.1, 0.0, (0,))

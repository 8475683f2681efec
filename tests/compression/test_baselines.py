"""SVD, FWSVD and ASVD factors against NumPy references on small matrices."""

import numpy as np
import pytest
import torch

from compression.baselines import asvd_factors, fwsvd_factors, rank_for_ratio, svd_factors
from core.config import ConfigError

RNG = np.random.default_rng(0)
W = RNG.standard_normal((12, 9))
R = 4


def _np_truncate(m, r):
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    return u[:, :r] @ np.diag(s[:r]) @ vt[:r]


def _product(f):
    up, down = f
    return (up @ down).numpy()


def test_svd_is_the_truncated_svd():
    np.testing.assert_allclose(_product(svd_factors(torch.from_numpy(W), R)), _np_truncate(W, R), atol=1e-10)


def test_fwsvd_matches_the_reference_and_wins_on_its_weighted_error():
    fisher = RNG.random((12, 9)) ** 3
    d = np.sqrt(fisher.sum(axis=1))
    want = np.diag(1 / d) @ _np_truncate(np.diag(d) @ W, R)
    got = _product(fwsvd_factors(torch.from_numpy(W), torch.from_numpy(fisher), R))
    np.testing.assert_allclose(got, want, atol=1e-10)
    weighted = lambda approx: np.linalg.norm(np.diag(d) @ (W - approx))  # noqa: E731
    assert weighted(got) <= weighted(_np_truncate(W, R)) + 1e-12


def test_asvd_matches_the_reference_and_is_svd_for_unit_activations():
    act = RNG.random(9) * 3
    s = act ** 0.5
    want = _np_truncate(W @ np.diag(s), R) @ np.diag(1 / s)
    np.testing.assert_allclose(_product(asvd_factors(torch.from_numpy(W), torch.from_numpy(act), R)), want, atol=1e-10)
    np.testing.assert_allclose(_product(asvd_factors(torch.from_numpy(W), torch.ones(9, dtype=torch.float64), R)),
                               _np_truncate(W, R), atol=1e-10)


def test_rank_for_ratio_and_bad_ranks():
    assert rank_for_ratio(576, 576, 0.5) == 144
    assert rank_for_ratio(1536, 576, 0.3) == int(0.3 * 1536 * 576 / 2112)
    with pytest.raises(ConfigError, match="'rank': must be in \\[1, 9\\]"):
        svd_factors(torch.from_numpy(W), 10)
    with pytest.raises(ConfigError, match="keep_ratio"):
        rank_for_ratio(4, 4, 0.0)

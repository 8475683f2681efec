import math

import pytest
import torch

from core.config import ConfigError
from core.seeding import generator
from distill.energy import (band_indices, energy_ranks, energy_score, floor_fraction, noise_keep_mask, pick_feedback,
                            sequence_energy)


def test_energy_of_equal_logits_is_minus_log_two():
    assert energy_score(torch.tensor([0.0, 0.0])).item() == pytest.approx(-math.log(2), abs=1e-7)


def test_energy_with_temperature_against_hand_value():
    # -T * log(exp(1/2) + exp(3/2)) with T = 2
    want = -2 * math.log(math.exp(0.5) + math.exp(1.5))
    e = energy_score(torch.tensor([[1.0, 3.0], [0.0, 0.0]]), temperature=2.0)
    assert e[0].item() == pytest.approx(want, abs=1e-6)
    assert e[1].item() == pytest.approx(-2 * math.log(2), abs=1e-6)


def test_confident_logits_have_lower_energy_and_large_logits_do_not_overflow():
    e = energy_score(torch.tensor([[10.0, -10.0], [0.1, -0.1], [1000.0, 0.0]]))
    assert e[0] < e[1]
    assert e[2].item() == pytest.approx(-1000.0)  # logsumexp is stable where exp would overflow


def test_energy_temperature_must_be_positive():
    with pytest.raises(ConfigError) as e:
        energy_score(torch.zeros(2), temperature=0.0)
    assert e.value.key == "feedback.temperature"


def test_sequence_energy_ignores_padding():
    g = generator("cpu", "seq-energy")
    logits = torch.randn(1, 3, 5, generator=g)
    per_token = energy_score(logits)[0]
    mask = torch.tensor([[1, 1, 0]])
    got = sequence_energy(logits, mask)
    assert got.item() == pytest.approx(per_token[:2].mean().item(), abs=1e-6)
    # changing the padded position's logits changes nothing (the released code's unmasked mean would)
    logits2 = logits.clone()
    logits2[0, 2] += 50.0
    assert sequence_energy(logits2, mask).item() == pytest.approx(got.item(), abs=1e-6)


def test_floor_fraction_is_robust_to_float_error():
    assert math.floor((1 - 0.8) * 10) == 1  # the naive floor loses one
    assert floor_fraction(0.8, 10) == 8 and floor_fraction(1 - 0.8, 10) == 2 and floor_fraction(0.5, 8) == 4
    assert floor_fraction(0.5, 1) == 0


def test_band_of_eight_probes_is_ranks_four_and_five():
    e = torch.tensor([0.3, -1.0, 2.0, 0.1, -0.5, 5.0, 1.0, 0.2])
    # ascending: -1.0(1) -0.5(4) 0.1(3) 0.2(7) 0.3(0) 1.0(6) 2.0(2) 5.0(5)
    assert energy_ranks(e).tolist() == [1, 4, 3, 7, 0, 6, 2, 5]
    assert band_indices(e, 0.5, 0.2).tolist() == [0, 6]  # noise 0.2: the band ends at rank floor(0.8 * 8) = 6
    assert band_indices(e, 0.0, 0.0).tolist() == [1, 4, 3, 7, 0, 6, 2, 5]


def test_band_ties_break_by_index_and_nan_counts_as_highest():
    e = torch.tensor([1.0, float("nan"), 1.0, 0.0])
    assert energy_ranks(e).tolist() == [3, 0, 2, 1]
    assert band_indices(e, 0.5, 0.0).tolist() == [2, 1]


def test_band_bounds_are_checked():
    with pytest.raises(ConfigError) as e:
        band_indices(torch.zeros(4), 0.8, 0.5)  # the band would start above the noise cut
    assert e.value.key == "feedback.band_low"


def test_feedback_strategies_pick_the_same_count():
    e = torch.tensor([0.3, -1.0, 2.0, 0.1, -0.5, 5.0, 1.0, 0.2, 0.7, -2.0])
    band = pick_feedback(e, "band", 0.5, 0.2)
    assert band.tolist() == [0, 8, 6]  # ranks 5, 6, 7 of 10
    assert pick_feedback(e, "highest", 0.5, 0.2).tolist() == [6, 2, 5]
    r1 = pick_feedback(e, "random", 0.5, 0.2, generator("cpu", "fb", 1))
    r2 = pick_feedback(e, "random", 0.5, 0.2, generator("cpu", "fb", 1))
    assert r1.tolist() == r2.tolist() and len(r1) == 3 and len(set(r1.tolist())) == 3
    draws = {tuple(pick_feedback(e, "random", 0.5, 0.2, generator("cpu", "fb", s)).tolist()) for s in range(10)}
    assert len(draws) > 1  # the seed matters
    assert pick_feedback(e, "none", 0.5, 0.2).numel() == 0


def test_noise_filter_drops_the_highest_energies():
    e = torch.tensor([0.3, -1.0, 2.0, 0.1, -0.5, 5.0, 1.0, 0.2, 0.7, -2.0])
    assert noise_keep_mask(e, 0.2).tolist() == [True, True, False, True, True, False, True, True, True, True]
    assert noise_keep_mask(e, 0.0).all()
    assert noise_keep_mask(torch.tensor([9.0]), 0.2).tolist() == [True]  # a batch of one is never emptied
    assert noise_keep_mask(torch.tensor([0.0, float("nan"), 1.0, 2.0]), 0.25).tolist() == [True, False, True, True]
    with pytest.raises(ConfigError) as err:
        noise_keep_mask(e, 1.0)
    assert err.value.key == "filter.noise"


@pytest.mark.parametrize("noise", [0.0, 0.1, 0.2, 0.25, 0.5])
def test_the_feedback_band_ends_where_the_noise_begins(noise):
    """One setting: for every batch size the noise the filter drops is exactly the ranks above the
    band's top edge, so no sample is both feedback and noise and none falls between them."""
    g = torch.Generator().manual_seed(0)
    for n in range(1, 33):
        e = torch.randn(n, generator=g)
        top = energy_ranks(e)[band_indices(e, 0.0, noise).numel():].tolist()
        assert sorted(top) == sorted(torch.nonzero(~noise_keep_mask(e, noise)).flatten().tolist())
        assert noise_keep_mask(e, noise).any()
    # the paper's numbers: 8 probes, band [0.5, 0.8): feedback ranks 4 and 5, ranks 6 and 7 noise
    e = torch.arange(8.0)
    assert band_indices(e, 0.5, 0.2).tolist() == [4, 5] and (~noise_keep_mask(e, 0.2)).nonzero().flatten().tolist() == [6, 7]

import math

import pytest
import torch

from core.seeding import generator
from distill.distribution import centroid_distance, coverage, nearest_distance


def test_centroid_distance_against_hand_values():
    reference = torch.tensor([[0.0, 0.0], [2.0, 0.0]])  # centroid (1, 0)
    samples = torch.tensor([[1.0, 0.0], [1.0, 3.0], [4.0, 4.0]])
    assert centroid_distance(samples, reference) == pytest.approx((0 + 3 + 5) / 3)
    with pytest.raises(ValueError):
        centroid_distance(torch.empty(0, 2), reference)


def test_nearest_distance_and_coverage_against_hand_values():
    generated = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    real = torch.tensor([[1.0, 0.0], [10.0, 2.0], [5.0, 0.0], [0.0, -0.5]])
    assert nearest_distance(real, generated, chunk=3).tolist() == pytest.approx([1.0, 2.0, 5.0, 0.5])
    assert coverage(real, generated, 1.0) == 0.5  # 1.0 and 0.5 are within the radius
    assert coverage(real, generated, 2.0) == 0.75
    assert coverage(real, generated, 0.0) == 0.0
    # more spread-out generations cover more of the real items
    spread = torch.cat([generated, torch.tensor([[5.0, 1.0]])])
    assert coverage(real, spread, 2.0) == 1.0
    with pytest.raises(ValueError):
        coverage(real, generated, -1.0)


def test_chunking_does_not_change_the_answer():
    g = generator("cpu", "distribution")
    a, b = torch.randn(50, 8, generator=g), torch.randn(30, 8, generator=g)
    assert torch.allclose(nearest_distance(a, b, chunk=7), torch.cdist(a.double(), b.double()).min(-1).values)
    assert math.isclose(coverage(a, b, 3.0), float((torch.cdist(a, b).min(-1).values <= 3.0).double().mean()))

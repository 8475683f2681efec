"""ASVD's sensitivity search, the leftover-rank allocation that puts every method on one
parameter budget, and the one calibration set of the compression job."""

from pathlib import Path

import pytest
import torch

from compression.asvd import layer_sensitivity, search_ratios
from compression.baselines import allocate_ranks, rank_for_ratio
from core.config import ConfigError, load

REPO = Path(__file__).resolve().parents[2]
# SmolLM2-135M's target layers: 30 decoder layers of q, k, v, o, gate, up, down (out x in)
BLOCK = {"q_proj": (576, 576), "k_proj": (192, 576), "v_proj": (192, 576), "o_proj": (576, 576),
         "gate_proj": (1536, 576), "up_proj": (1536, 576), "down_proj": (576, 1536)}
SHAPES = {f"layers.{i}.{k}": s for i in range(30) for k, s in BLOCK.items()}
SIZES = {n: m * k for n, (m, k) in SHAPES.items()}


def _used(ranks, shapes=SHAPES):
    return sum(r * sum(shapes[n]) for n, r in ranks.items())


@pytest.mark.parametrize("ratio", [0.75, 0.5, 0.3])
def test_uniform_ranks_take_the_leftover_and_land_within_one_rank_of_the_budget(ratio):
    budget = int(ratio * sum(SIZES.values()))
    ranks = allocate_ranks(SHAPES, budget, ratio)
    used = _used(ranks)
    assert used <= budget and budget - used < min(m + k for m, k in SHAPES.values())  # within one rank
    assert (budget - used) / budget < 1e-3
    # the floors alone leave tens of thousands of parameters unused: that is what the leftover fills
    floors = {n: rank_for_ratio(*s, ratio) for n, s in SHAPES.items()}
    assert budget - _used(floors) > 10 * 768
    assert all(ranks[n] - floors[n] in (0, 1) for n in SHAPES)  # spread one at a time, not piled on a layer


def test_the_search_gives_sensitive_layers_more_and_every_method_the_same_count():
    # down_proj and the first layer are sensitive: their perplexity rises steeply with compression
    grid = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    sens = {}
    for n in SHAPES:
        steep = 40.0 if n.endswith("down_proj") or n.startswith("layers.0.") else 2.0
        for g in grid:
            sens[(n, g)] = 10.0 + steep * (1 - g) ** 2 + 0.001 * len(n)
    for target in (0.75, 0.5, 0.3):
        ratios = search_ratios(sens, SIZES, target)
        assert sum(SIZES[n] * ratios[n] for n in SHAPES) / sum(SIZES.values()) <= target + 1e-12
        assert ratios["layers.5.down_proj"] > ratios["layers.5.up_proj"]
        assert ratios["layers.0.q_proj"] > ratios["layers.5.q_proj"]
        budget = int(target * sum(SIZES.values()))
        dense = sum(SIZES[n] for n in SHAPES if ratios[n] >= 1.0)
        ranks = allocate_ranks({n: s for n, s in SHAPES.items() if ratios[n] < 1.0}, budget - dense, ratios)
        asvd = _used(ranks) + dense
        svd = _used(allocate_ranks(SHAPES, budget, target))
        assert abs(asvd - svd) / budget < 1e-3 and abs(asvd - budget) / budget < 1e-3


def test_search_matches_asvds_bisection_on_a_hand_example():
    sizes = {"a": 100, "b": 100}
    # b hurts more at every ratio; a at 0.2 is the least harmful compression
    sens = {("a", 0.2): 11.0, ("a", 0.5): 10.5, ("b", 0.2): 30.0, ("b", 0.5): 12.0}
    assert search_ratios(sens, sizes, 0.35) == {"a": 0.2, "b": 0.5}
    assert search_ratios(sens, sizes, 0.2) == {"a": 0.2, "b": 0.2}
    assert search_ratios(sens, sizes, 0.75) == {"a": 0.5, "b": 1.0}  # b stays dense
    with pytest.raises(ConfigError):
        search_ratios(sens, sizes, 0.0)


def test_allocation_refuses_floors_over_the_budget():
    with pytest.raises(ConfigError, match="over the budget"):
        allocate_ranks({"a": (10, 10)}, 30, 0.5)  # rank 2 costs 40


def test_layer_sensitivity_scores_every_layer_and_ratio_and_restores_the_weights():
    from compression.bases import matching_linears
    from compression.calibrate import activation_absmean
    from compression.data import perplexity
    from core.models import ModelConfig, load_causal_lm

    model = load_causal_lm(ModelConfig(name="tiny-llama", max_length=16), seed=0).eval()
    names = matching_linears(model, ["q_proj", "down_proj"])
    blocks = torch.randint(5, 1000, (3, 16), generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    act = activation_absmean(model, names, blocks, batch_size=2)
    sens = layer_sensitivity(model, names, act, blocks[:2], [0.2, 0.9])
    assert set(sens) == {(n, g) for n in names for g in (0.2, 0.9)}
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    # one layer at rho 0.9 is closer to the dense model than at 0.2 on average
    dense = perplexity(model, blocks[:2])
    near = sum(abs(sens[(n, 0.9)] - dense) for n in names)
    far = sum(abs(sens[(n, 0.2)] - dense) for n in names)
    assert near < far


@pytest.mark.parametrize("config", ["configs/compression/laptop.yaml", "configs/compression/cluster.yaml"])
def test_every_method_calibrates_on_at_least_16k_tokens(config):
    from compression.config import CompressionConfig

    cfg = load(CompressionConfig, REPO / config)
    assert cfg.data.calibration_blocks * cfg.data.seq_len >= 16_384
    assert cfg.asvd.search and min(cfg.asvd.grid) <= min(cfg.keep_ratios)


def test_the_asvd_sample_must_come_from_the_calibration_set():
    from compression.config import CompressionConfig

    with pytest.raises(ConfigError) as e:
        load(CompressionConfig, REPO / "configs/compression/tiny.yaml", ["asvd.sensitivity_blocks=99"])
    assert e.value.key == "asvd.sensitivity_blocks"
    with pytest.raises(ConfigError) as e:
        load(CompressionConfig, REPO / "configs/compression/tiny.yaml", ["data.calibration_blocks=999"])
    assert e.value.key == "data.calibration_blocks"

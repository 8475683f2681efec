import pytest

from distill.tune import best_trial


def test_the_best_trial_is_picked_among_those_that_spent_the_whole_budget():
    # trial 1 has the best dev accuracy, but ASHA stopped it after iteration 1 of 0..5
    last = [{"iteration": 5.0, "dev_accuracy": 0.61}, {"iteration": 1.0, "dev_accuracy": 0.70},
            {"iteration": 5.0, "dev_accuracy": 0.64}, {"iteration": 5.0, "dev_accuracy": 0.64}]
    assert best_trial(last, iterations=6) == 2  # ties go to the first
    assert best_trial(last) == 1  # without a budget to hold to, the best of all
    # when no trial finished, the best of the stopped ones
    assert best_trial([{"iteration": 1.0, "dev_accuracy": 0.5}, {"iteration": 2.0, "dev_accuracy": 0.6}], 6) == 1
    with pytest.raises(ValueError):
        best_trial([], 6)


def test_gold_and_zerogen_get_the_same_trials_and_search_the_same_generation_keys():
    from core.config import from_dict
    from distill.experiment import GoldJobConfig, trial_config
    from distill.tune import search_space

    job = from_dict(GoldJobConfig, {"search": {"num_samples": 3, "samples_per_label": [4, 8], "temperature": [0.8, 1.0],
                                               "noise": [0.1, 0.2]}})
    gold, zerogen = search_space(job, "gold"), search_space(job, "zerogen")
    assert gold["trial"] == zerogen["trial"] == {"grid_search": [0, 1, 2]}
    for key in ("samples_per_label", "temperature"):
        assert gold[key].categories == zerogen[key].categories == getattr(job.search, key)
    assert "noise" in gold and "noise" not in zerogen and gold["noise"].categories == [0.1, 0.2]
    # trial i generates from its own seed (trial 0: the base run's); ZeroGen filters nothing
    seeds = {trial_config(job.gold, {"arm": "zerogen", "trial": i}).seed for i in range(3)}
    assert len(seeds) == 3 and job.gold.seed in seeds
    assert trial_config(job.gold, {"arm": "zerogen", "trial": 1}).filter.noise == 0.0
    assert trial_config(job.gold, {"arm": "gold", "trial": 1, "noise": 0.1}).filter.noise == 0.1

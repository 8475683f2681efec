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

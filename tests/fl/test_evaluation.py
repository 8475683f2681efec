"""fl.evaluation: clients' own test sets, generalized and personalized accuracy, paired tests."""

import numpy as np
import pytest
from scipy import stats

from core.config import load
from fl.evaluation import (client_test_sets, generalized_accuracy, paired_change, per_example, personalize)


def test_client_test_sets_deal_the_test_set_by_each_clients_labels():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 3, 300)
    parts = [np.flatnonzero(train == 0), np.flatnonzero(train != 0)[:60], np.flatnonzero(train != 0)[60:]]
    test = rng.integers(0, 3, 90)
    sets = client_test_sets(train, parts, test, seed=1)
    flat = np.concatenate(sets)
    assert sorted(flat.tolist()) == list(range(90))  # disjoint, and together the whole test set
    assert set(test[sets[0]]) == {0}  # client 0 holds only class 0, so it is tested on class 0 only
    assert 0 not in set(test[sets[1]]) | set(test[sets[2]])
    for c in (1, 2):  # each class dealt in proportion to the clients' training counts, to within one
        for y in (1, 2):
            share = (train[parts[c]] == y).sum() / sum((train[parts[k]] == y).sum() for k in (1, 2))
            assert abs((test[sets[c]] == y).sum() - share * (test == y).sum()) < 1.0 + 1e-9
    assert [s.tolist() for s in client_test_sets(train, parts, test, seed=1)] == [s.tolist() for s in sets]


def test_generalized_accuracy_averages_clients_not_examples():
    correct = np.array([1, 1, 1, 1, 0, 0], dtype=float)
    sets = [np.array([0, 1, 2, 3]), np.array([4, 5]), np.array([], dtype=int)]
    assert generalized_accuracy(correct, sets) == pytest.approx(0.5)  # (1.0 + 0.0) / 2, the empty set skipped
    assert correct.mean() == pytest.approx(4 / 6)


def test_paired_change_is_the_paired_t_test():
    rng = np.random.default_rng(3)
    before = rng.normal(0.6, 0.3, 400)
    after = before - 0.01 + rng.normal(0, 0.02, 400)
    out = paired_change(before, after)
    ref = stats.ttest_rel(after, before)
    assert out["mean"] == pytest.approx(-0.01, abs=0.003)
    assert out["t"] == pytest.approx(ref.statistic) and out["p"] == pytest.approx(ref.pvalue)
    assert out["se"] == pytest.approx(np.std(after - before, ddof=1) / 20)
    # an unpaired test on the same numbers would see nothing: the pairing is what removes the spread
    assert stats.ttest_ind(after, before).pvalue > 0.5 > 0.01 > out["p"]
    assert paired_change(before, before)["p"] == 1.0


def test_personalize_trains_each_client_and_tests_it_on_its_own_set(tiny_yaml):
    from fl.runtime import Runtime

    cfg = load(__import__("fl.config", fromlist=["SpryConfig"]).SpryConfig, tiny_yaml, ["fl.lr=0.5"])
    rt = Runtime(cfg, with_test=True)
    state = rt.state()
    names = [n for n in rt.trainable_names if n.startswith("head.")]
    out = personalize(cfg, rt, state, rt.client_tests, {0: names, 2: names}, epochs=1)
    assert out["personalized_clients"] == 2 and out["personalize_epochs"] == 1
    rt.load_state(state)
    general = [per_example(rt.model, {k: v[rt.client_tests[p]] for k, v in rt.test_data.items()})["correct"].mean()
               for p in (0, 2)]
    assert out["generalized_accuracy_same_clients"] == pytest.approx(np.mean(general))
    assert out["personalized_accuracy"] != out["generalized_accuracy_same_clients"]  # the local epochs moved it
    assert all((rt.state()[k] == state[k]).all() for k in state)  # the global weights are put back


def test_report_states_the_paired_loss_change_and_plots_it(tmp_path):
    from types import SimpleNamespace

    import torch

    from core.config import from_dict
    from core.runs import RunDir
    from fl.config import SpryConfig
    from fl.evaluation import per_example_path, save_per_example
    from fl.report import write_report

    rng = np.random.default_rng(0)
    n = 300
    before = rng.gamma(2.0, 0.3, n)
    after = before - 0.02 + rng.normal(0, 0.01, n)  # every example a little better: a real drop
    correct = (rng.random(n) < 0.7).astype(float)
    run = RunDir(tmp_path)
    for r, loss in ((0, before), (3, after)):
        save_per_example(per_example_path(run.path, r), {"loss": loss, "correct": correct})
    history = [{"round": 0, "accuracy": 0.7, "loss": float(before.mean()), "generalized_accuracy": 0.69},
               {"round": 3, "accuracy": 0.7, "loss": float(after.mean()), "generalized_accuracy": 0.7,
                "train_loss": 0.5}]
    runtime = SimpleNamespace(test_data={"labels": torch.tensor((correct > 0).astype(int))})
    cfg = from_dict(SpryConfig, {}, [])
    personal = {"personalized_accuracy": 0.8, "generalized_accuracy_same_clients": 0.7,
                "personalized_clients": 2, "personalize_epochs": 5}
    text = write_report(cfg, run, history, runtime, None, personalization=personal)
    p = paired_change(before, after)
    assert f"change {p['mean']:+.4f} (standard error {p['se']:.4f}" in text
    assert "lower, significantly (p < 0.01)" in text and p["p"] < 0.01
    assert "Personalized accuracy (2 clients" in text and "| generalized accuracy |" in text
    assert (tmp_path / "accuracy_loss.png").stat().st_size > 10_000

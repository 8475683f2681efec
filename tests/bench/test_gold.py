"""bench.gold's joining of runs: the teacher's zero-shot accuracy taken from another run of the
same config when the runs themselves skipped it."""

import json

import pytest

from bench.gold import _accuracies, with_teacher


def _run(tmp_path, name, rows):
    d = tmp_path / name
    d.mkdir()
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def test_the_teacher_comes_from_the_teacher_run_only_when_the_run_skipped_it(tmp_path):
    skipped = _run(tmp_path, "seed0", [{"model": "gold", "test_accuracy": 0.8}, {"model": "zerogen", "test_accuracy": 0.7},
                                       {"iteration": 3, "dev_accuracy": 0.5}])
    teacher = _run(tmp_path, "teacher", [{"model": "teacher_zero_shot", "test_accuracy": 0.85, "examples": 500}])
    acc = _accuracies(skipped)
    assert acc == {"gold": 0.8, "zerogen": 0.7}
    sentence = with_teacher(acc, teacher)
    assert acc["teacher_zero_shot"] == 0.85 and "0.8500" in sentence and str(teacher) in sentence
    own = {"gold": 0.8, "teacher_zero_shot": 0.9}
    assert with_teacher(own, teacher) == "" and own["teacher_zero_shot"] == 0.9  # a run's own measurement stays
    with pytest.raises(SystemExit, match="no teacher_zero_shot row"):
        with_teacher({}, skipped)


def _config_run(tmp_path, name, *overrides):
    from core.config import load, to_yaml
    from distill.experiment import GoldJobConfig

    d = tmp_path / name
    d.mkdir()
    (d / "config.yaml").write_text(to_yaml(load(GoldJobConfig, "configs/gold/tiny.yaml", list(overrides))))
    return d


def test_the_noise_in_pool_control_has_its_own_section_and_takes_only_its_own_runs(tmp_path):
    from core.config import load
    from distill.experiment import GoldJobConfig

    from bench.gold import check_same_method, section_name

    method = load(GoldJobConfig, "configs/gold/laptop.yaml")
    control = load(GoldJobConfig, "configs/gold/laptop.yaml", ["gold.filter.drop=false"])
    assert section_name(method, "configs/gold/laptop.yaml") == "gold"
    assert section_name(control, "configs/gold/laptop.yaml") == "gold_noise_in_pool"
    tiny = load(GoldJobConfig, "configs/gold/tiny.yaml", ["gold.filter.drop=false"])
    assert section_name(tiny, "configs/gold/tiny.yaml") == "gold_tiny_noise_in_pool"
    kept = _config_run(tmp_path, "kept", "gold.filter.drop=false")
    cut = _config_run(tmp_path, "cut")
    check_same_method(tiny, [kept])
    check_same_method(load(GoldJobConfig, "configs/gold/tiny.yaml"), [cut])
    with pytest.raises(SystemExit, match=r"cut: run with gold.filter.drop=true.*--set gold.filter.drop=true"):
        check_same_method(tiny, [kept, cut])


def test_another_generation_budget_has_its_own_section_and_takes_only_its_own_runs(tmp_path):
    from core.config import load
    from distill.experiment import GoldJobConfig

    from bench.gold import check_same_method, section_name

    longer = load(GoldJobConfig, "configs/gold/laptop.yaml", ["gold.filter.drop=false", "gold.iterations=17"])
    assert section_name(longer, "configs/gold/laptop.yaml") == "gold_noise_in_pool_17_iterations"
    same = load(GoldJobConfig, "configs/gold/laptop.yaml", ["gold.iterations=6"])
    assert section_name(same, "configs/gold/laptop.yaml") == "gold"  # the config's own budget, set explicitly
    tiny = load(GoldJobConfig, "configs/gold/tiny.yaml", ["gold.iterations=5"])
    check_same_method(tiny, [_config_run(tmp_path, "five", "gold.iterations=5")])
    with pytest.raises(SystemExit, match=r"two: run with gold.iterations=2, .*--set gold.iterations=2"):
        check_same_method(tiny, [_config_run(tmp_path, "two")])


def _seed_run(tmp_path, name, seed, drop, rows):
    d = _config_run(tmp_path, name, f"gold.seed={seed}", f"gold.filter.drop={drop}")
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def test_the_cut_comparison_pairs_runs_by_seed_and_averages_each_arm(tmp_path):
    from bench.gold import cut_comparison

    def rows(gold, zerogen, pool):
        out = [{"model": "gold", "test_accuracy": gold, "pool": pool}]
        return out + ([{"model": "zerogen", "test_accuracy": zerogen, "pool": 140}] if zerogen else [])

    kept = [_seed_run(tmp_path, f"k{s}", s, "false", rows(0.70 + s / 100, 0.72, 130)) for s in (0, 1)]
    cut = [_seed_run(tmp_path, f"c{s}", s, "true", rows(0.60 + s / 100, None, 100)) for s in (1, 0)]  # any order
    text = cut_comparison(kept, cut, ["minilm"])
    assert "| minilm | GOLD, noise cut (the method) | 0.600 / 0.610 | 0.6050 | 100 / 100 |" in text
    assert "| minilm | GOLD, noise kept in the pool | 0.700 / 0.710 | 0.7050 | 130 / 130 |" in text
    assert "| minilm | ZeroGen | 0.720 / 0.720 | 0.7200 | 140 / 140 |" in text
    with pytest.raises(SystemExit, match="seeds"):
        cut_comparison(kept, cut[:1], ["minilm"])
    with pytest.raises(SystemExit, match="gold@mpnet"):
        cut_comparison(kept, cut, ["minilm", "mpnet"])


def test_runs_of_the_other_setting_are_refused_before_any_work(tmp_path):
    """bench.gold's own command line: a --from-run or --cut-run made with the other gold.filter.drop
    exits naming the run before the teacher is started or timed."""
    from bench.gold import main

    kept = _seed_run(tmp_path, "kept", 0, "false", [])
    cut = _seed_run(tmp_path, "cut", 0, "true", [])
    with pytest.raises(SystemExit, match="kept: run with gold.filter.drop=false"):
        main(["--config", "configs/gold/tiny.yaml", "--from-run", str(kept)])
    with pytest.raises(SystemExit, match="--cut-run compares"):
        main(["--config", "configs/gold/tiny.yaml", "--from-run", str(cut), "--cut-run", str(cut)])
    with pytest.raises(SystemExit, match="kept: run with gold.filter.drop=false"):
        main(["--config", "configs/gold/tiny.yaml", "--set", "gold.filter.drop=false", "--from-run", str(kept),
              "--cut-run", str(kept)])


def test_by_source_table_shows_each_run_and_pools_the_counts():
    from bench.gold import by_source_table

    text = by_source_table([[["gold", "OOD probes", 4, 3], ["zerogen", "the rest of its batch", 2, 2]],
                            [["gold", "OOD probes", 6, 3]]])
    assert "| gold | OOD probes | 4 / 6 | 0.750 / 0.500 | 0.600 |" in text
    assert "| zerogen | the rest of its batch | 2 / - | 1.000 / - | 1.000 |" in text


def test_judge_by_source_splits_thirds_probes_and_the_noise_ranks_of_each_batch():
    from bench.gold import judge_by_source

    rows, agrees = [], []
    # gold, iteration 0 (no energies yet): two plain samples, one agreed
    for ok in (True, False):
        rows.append({"arm": "gold", "kind": "generated", "iteration": 0, "energy": None}), agrees.append(ok)
    # gold, iteration 5 of 6: a batch of 5 plain samples; noise 0.2 cuts rank 4 (the highest energy), which the
    # judge rejects, while it agrees with the other four
    for e in (1.0, 2.0, 3.0, 4.0, 9.0):
        rows.append({"arm": "gold", "kind": "generated", "iteration": 5, "energy": e}), agrees.append(e < 9)
    # gold probes at iteration 2: 5 of them, the highest-energy one agreed, the rest not
    for e in (1.0, 2.0, 3.0, 4.0, 9.0):
        rows.append({"arm": "gold", "kind": "probe", "iteration": 2, "energy": e}), agrees.append(e == 9)
    rows.append({"arm": "zerogen", "kind": "generated", "iteration": 3, "energy": 1.0}), agrees.append(True)
    table = judge_by_source(rows, agrees, iterations=6, noise=0.2)
    got = {(arm, src): (n, f"{ok / n:.3f}") for arm, src, n, ok in table}
    cut = "top 20% energy of its batch (what the cut drops)"
    assert got[("gold", "plain samples, iterations 0-1")] == (2, "0.500")
    assert got[("gold", "plain samples, iterations 4-5")] == (5, "0.800")
    assert ("gold", "plain samples, iterations 2-3") not in got  # no plain sample there: no row
    assert got[("gold", "OOD probes")] == (5, "0.200")
    assert got[("gold", cut)] == (2, "0.500")  # rank 4 of each 5-sample batch: one rejected, one agreed
    assert got[("gold", "the rest of its batch")] == (8, "0.500")  # iteration 0 has no energies
    assert got[("zerogen", "plain samples, iterations 2-3")] == (1, "1.000")
    assert got[("zerogen", "the rest of its batch")] == (1, "1.000")  # one sample: a batch is never emptied
    assert [r[0] for r in table] == ["gold"] * 5 + ["zerogen"] * 2  # arms in pool order
    # a pool that lost its noise ranks before it was saved gets no energy split
    assert not {src for arm, src, *_ in judge_by_source(rows, agrees, 6, 0.2, frozenset({"gold"}))
                if arm == "gold"} & {cut, "the rest of its batch"}


def test_verdict_names_why_a_target_was_not_measured_and_flags_runs_that_disagree():
    from bench.gold import verdict

    runs = [{"gold": 0.70, "zerogen": 0.72}, {"gold": 0.80, "zerogen": 0.74}]
    line = verdict(0.75, 0.73, "ZeroGen", "zerogen", runs)
    assert "**met**" in line and "disagree in sign" in line and "-2.0, +6.0" in line
    assert "**missed**" in verdict(0.70, 0.72, "ZeroGen", "zerogen", runs[:1])
    assert "zero_shot_examples: 0" in verdict(0.75, None, "the teacher", "teacher_zero_shot", runs)
    assert "arm missing from the config" in verdict(None, 0.73, "ZeroGen", "zerogen", runs)

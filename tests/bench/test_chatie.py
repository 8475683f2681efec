"""bench.chatie's section: the targets it judges from a run's rows, including a side run on a subset."""

import json
from pathlib import Path

from bench.chatie import R, section
from core.config import load
from ie.config import ChatIEJobConfig


def _row(dataset: str, task: str, method: str, f1: float, inputs: int = 10) -> R:
    stats = {"inputs": inputs, "answers": inputs, "prompt_tokens": 100 * inputs, "completion_tokens": 10 * inputs,
             "seconds": 60.0, "reused": 0, "inputs_reused": 0, "status": {"ok": inputs}}
    return R({"dataset": dataset, "task": task, "method": method, "per_type": {}, "stats": stats,
              "metrics": {"precision": f1, "recall": f1, "f1": f1}})


def _targets(rows) -> list[str]:
    cfg = load(ChatIEJobConfig, Path(__file__).parents[2] / "configs/chatie/laptop.yaml")
    text = section(rows, cfg, None, "", None)
    return [line for line in text.splitlines() if line.startswith("- ")]


def test_a_likelihood_subset_beside_the_full_pair_is_compared_on_its_own_inputs():
    rows = [_row("wnut17", "ner", "chatie", 0.18), _row("wnut17", "ner", "single_turn", 0.37),
            _row("fewrel", "re", "chatie", 0.30), _row("fewrel", "re", "single_turn", 0.20),
            _row("wnut17-first50", "ner", "chatie", 0.21, 50), _row("wnut17-first50", "ner", "chatie_loglik", 0.33, 50)]
    lines = _targets(rows)
    assert lines == [
        "- ChatIE beats single-turn F1 on NER (wnut17): 0.180 vs 0.370: **missed**",
        "- ChatIE beats single-turn F1 on RE (fewrel): 0.300 vs 0.200: **met**",
        # the subset's stage-I comparison uses its own text-stage-I row, not the full dataset's
        "- stage I by likelihood vs parsed from text (wnut17-first50): F1 0.330 vs 0.210",
    ]


def test_a_dataset_without_its_pair_is_not_measured_and_a_loglik_suffix_names_its_base():
    rows = [_row("wnut17", "ner", "chatie", 0.25), _row("wnut17-loglik", "ner", "chatie_loglik", 0.30)]
    lines = _targets(rows)
    assert "- ChatIE beats single-turn F1 on RE: **not measured** (no RE dataset finished in this run)" in lines
    assert any(line.startswith("- ChatIE beats single-turn F1 on NER (wnut17): **not measured**") for line in lines)
    assert "- stage I by likelihood vs parsed from text (wnut17): F1 0.300 vs 0.250" in lines


def test_the_dialogue_line_counts_stage_one_misses_on_inputs_with_gold():
    from bench.chatie import dialogue_line

    records = [
        {"entities": [{"type": "person", "text": "Ann"}], "turns": [{"stage": "stage1", "status": "none"}]},
        {"entities": [], "turns": [{"stage": "stage1", "status": "unparsed"}]},
        {"entities": [{"type": "person", "text": "Bo"}],
         "turns": [{"stage": "stage1", "status": "ok"}, {"stage": "stage2:person", "status": "none"},
                   {"stage": "stage2:location", "status": "ok"}]},
    ]
    assert dialogue_line("d", "ner", records) == (
        "d: stage I answers 3: none 1, ok 1, unparsed 1 (1 of the none/unparsed on inputs with gold); "
        "stage II questions 2, 1 answered none; inputs with stage II asked 1.")


def test_subset_f1_scores_only_the_given_inputs():
    from bench.chatie import subset_f1

    records = [{"id": "0", "pred": [["person", "Ann"]], "entities": [{"type": "person", "text": "Ann"}]},
               {"id": "1", "pred": [["person", "Cy"]], "entities": [{"type": "person", "text": "Bo"}]}]
    assert (subset_f1("ner", records, {"0"}).f1, subset_f1("ner", records, {"0", "1"}).f1) == (1.0, 0.5)


def test_the_errors_line_counts_wrong_predictions_and_relations_answered_none():
    from bench.chatie import errors_line

    ner = [{"pred": [["person", "Ann"], ["person", "the soldier"]], "entities": [{"type": "person", "text": "Ann"}]},
           {"pred": [["location", "home"]], "entities": []}]
    assert errors_line("d", "ner", "single_turn", ner) == (
        "single_turn, d: 3 predictions, 1 right, 2 wrong (1 of them on inputs with no gold).")
    triple = {"relation": "crosses", "subject": "Bridge", "object": "River"}
    re_ = [{"pred": [], "triples": [triple],
            "turns": [{"stage": "stage1", "status": "ok"}, {"stage": "stage2:crosses", "status": "none"}]},
           {"pred": [["crosses", "Bridge", "River"]], "triples": [triple],
            "turns": [{"stage": "stage1", "status": "ok"}, {"stage": "stage2:part of", "status": "none"},
                      {"stage": "stage2:crosses", "status": "ok"}]}]
    assert errors_line("f", "re", "chatie", re_) == (
        "chatie, f: 1 predictions, 1 right, 0 wrong (0 of them on inputs with no gold); stage II was asked for "
        "the gold relation on 2 inputs and answered none on 1.")
    event = {"type": "Life.Die.Unspecified", "arguments": [{"role": "Victim", "text": "soldiers"}]}
    ee = [{"pred": [["Life.Die.Unspecified", "Victim", "soldiers"], ["GenericCrime.GenericCrime.GenericCrime", "", ""]],
           "events": [event]},
          {"pred": [["GenericCrime.GenericCrime.GenericCrime", "Perpetrator", "men"]], "events": []},
          {"pred": [], "events": [event]}]
    assert errors_line("w", "ee", "chatie", ee) == (
        "chatie, w: 2 predictions, 1 right, 1 wrong (1 of them on inputs with no gold); event types: 1 of the 2 gold "
        "(input, type) pairs found, the most often wrong type GenericCrime.GenericCrime.GenericCrime (named on 2 "
        "inputs, 0 of them right).")


def test_a_target_is_met_only_when_the_paired_interval_lies_above_zero():
    rows = [_row("wnut17", "ner", "chatie", 0.40), _row("wnut17", "ner", "single_turn", 0.38),
            _row("fewrel", "re", "chatie", 0.30), _row("fewrel", "re", "single_turn", 0.10)]
    cfg = load(ChatIEJobConfig, Path(__file__).parents[2] / "configs/chatie/laptop.yaml")
    text = section(rows, cfg, None, "", None, intervals={("wnut17", "chatie"): (0.02, -0.03, 0.07),
                                                        ("fewrel", "chatie"): (0.2, 0.1, 0.3)})
    assert ("- ChatIE beats single-turn F1 on NER (wnut17): 0.400 vs 0.380 (difference +0.020, 95% paired "
            "bootstrap interval over inputs [-0.030, +0.070]): **not shown (the difference is within the noise)**") in text
    assert "on RE (fewrel): 0.300 vs 0.100 (difference +0.200" in text and "+0.300]): **met**" in text


def test_the_paired_bootstrap_interval():
    from ie.score import paired_bootstrap_f1

    gold = [{("person", f"p{i}")} for i in range(40)]
    right = [(g, g) for g in gold]
    half = [(g if i % 2 else set(), g) for i, g in enumerate(gold)]
    diff, lo, hi = paired_bootstrap_f1(right, half, samples=500)
    assert diff == 1.0 - 2 * 20 / (20 + 40) and 0 < lo <= diff <= hi  # clearly better: the interval excludes 0
    same = paired_bootstrap_f1(half, half, samples=200)
    assert same == (0.0, 0.0, 0.0)
    # one input apart out of 40: the interval holds 0
    one = [(g if i % 2 or i == 0 else set(), g) for i, g in enumerate(gold)]
    diff, lo, hi = paired_bootstrap_f1(one, half, samples=500)
    assert diff > 0 and lo <= 0 <= hi
    assert paired_bootstrap_f1(right, half, samples=100, seed=3) == paired_bootstrap_f1(right, half, samples=100, seed=3)


def test_the_target_line_gives_the_answers_own_strings_beside_the_grounded_f1():
    rows = [_row("wnut17", "ner", "chatie", 0.38), _row("wnut17", "ner", "single_turn", 0.41)]
    for r, raw in zip(rows, (0.33, 0.37)):
        r.metrics.update(ungrounded_f1=raw, dropped=50)
    (line,) = [x for x in _targets(rows) if "NER" in x]
    assert line == ("- ChatIE beats single-turn F1 on NER (wnut17): 0.380 vs 0.410 (as answered, before grounding: "
                    "0.330 vs 0.370): **missed**")


def test_stage_one_by_likelihood_gets_its_own_target_line_with_its_own_interval():
    rows = [_row("wnut17", "ner", "chatie", 0.377), _row("wnut17", "ner", "chatie_loglik", 0.416),
            _row("wnut17", "ner", "single_turn", 0.408)]
    cfg = load(ChatIEJobConfig, Path(__file__).parents[2] / "configs/chatie/laptop.yaml")
    text = section(rows, cfg, None, "", None, intervals={("wnut17", "chatie"): (-0.031, -0.08, 0.02),
                                                        ("wnut17", "chatie_loglik"): (0.008, -0.04, 0.05)})
    assert ("- ChatIE with stage I by likelihood beats single-turn F1 on NER (wnut17): 0.416 vs 0.408 (difference "
            "+0.008, 95% paired bootstrap interval over inputs [-0.040, +0.050]): **not shown (the difference is "
            "within the noise)**") in text
    assert "- ChatIE beats single-turn F1 on NER (wnut17): 0.377 vs 0.408 (difference -0.031" in text


def test_paired_intervals_pair_each_chatie_method_with_single_turn_on_the_same_inputs(tmp_path):
    from bench.chatie import paired_intervals

    gold = [{"type": "person", "text": "Lee"}]
    preds = {"chatie": [["person", "Lee"]], "chatie_loglik": [["person", "Kim"]], "single_turn": [["person", "Lee"]]}
    (tmp_path / "predictions").mkdir()
    for m, p in preds.items():
        rows = [{"id": str(i), "entities": gold, "pred": p} for i in range(5)]
        (tmp_path / "predictions" / f"d.{m}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = paired_intervals([tmp_path], {"d": "ner"})
    assert out[("d", "chatie")] == (0.0, 0.0, 0.0) and out[("d", "chatie_loglik")] == (-1.0, -1.0, -1.0)


def test_a_run_of_likelihood_stage_one_and_single_turn_alone_is_judged():
    rows = [_row("fewrel", "re", "chatie_loglik", 0.15), _row("fewrel", "re", "single_turn", 0.12)]
    assert [x for x in _targets(rows) if "RE" in x] == [
        "- ChatIE with stage I by likelihood beats single-turn F1 on RE (fewrel): 0.150 vs 0.120: **met**"]


def test_an_events_only_config_compares_events_and_points_to_the_laptop_section_for_the_targets():
    rows = [_row("wikievents", "ee", "chatie", 0.05), _row("wikievents", "ee", "single_turn", 0.02)]
    for r, t in zip(rows, (0.30, 0.25)):
        r.metrics["type_f1"] = t
    cfg = load(ChatIEJobConfig, Path(__file__).parents[2] / "configs/chatie/wikievents.yaml")
    text = section(rows, cfg, None, "", None, intervals={("wikievents", "chatie"): (0.03, 0.01, 0.05)})
    lines = [line for line in text.splitlines() if line.startswith("- ")]
    assert lines == [
        "- ChatIE beats single-turn F1 on NER: **not measured** (this config has no NER dataset; the laptop "
        "config's `chatie` section measures it)",
        "- ChatIE beats single-turn F1 on RE: **not measured** (this config has no RE dataset; the laptop "
        "config's `chatie` section measures it)",
        "- ChatIE against single turn on EE (wikievents), not a target: argument F1 0.050 vs 0.020 (difference "
        "+0.030, 95% paired bootstrap interval over inputs [+0.010, +0.050]); event-type F1 0.300 vs 0.250: **ahead on arguments**",
    ]
    behind = section(rows, cfg, None, "", None, intervals={("wikievents", "chatie"): (-0.03, -0.05, -0.01)})
    assert behind.rstrip().endswith("**behind on arguments**")


def test_holdout_lines_judge_a_target_only_on_the_inputs_past_the_earlier_run(tmp_path):
    from bench.chatie import holdout_lines

    gold = [{"type": "person", "text": "Lee"}]
    right, wrong = [["person", "Lee"]], [["person", "Kim"]]
    (tmp_path / "predictions").mkdir()
    # on the first two inputs single turn is right and likelihood ChatIE wrong; past them, the reverse
    for m, preds in {"chatie_loglik": [wrong, wrong, right, right], "single_turn": [right, right, wrong, wrong]}.items():
        rows = [{"id": str(i), "entities": gold, "pred": p} for i, p in enumerate(preds)]
        (tmp_path / "predictions" / f"d.{m}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert holdout_lines([tmp_path], {"d": "ner"}, 2) == [
        "- chatie_loglik against single turn on NER (d), inputs 3 to 4 only (2, not scored by the earlier run): "
        "F1 1.000 vs 0.000 (difference +1.000, 95% paired bootstrap interval over inputs [+1.000, +1.000]): **met**"]
    everything = holdout_lines([tmp_path], {"d": "ner"}, 0)[0]
    assert "inputs 1 to 4 only (4," in everything and "F1 0.500 vs 0.500 (difference +0.000" in everything
    assert everything.endswith("**missed**")
    assert holdout_lines([tmp_path], {"d": "ner"}, 4) == ["- chatie_loglik on d from input 5 on: no inputs"]

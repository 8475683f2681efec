"""tables.report.paired_gain and bench.unitable's per-seed table, on hand-made results."""

from __future__ import annotations

import json
import math

import pytest

from tables.report import paired_gain


def test_paired_gain_is_the_mean_difference_with_its_standard_error():
    a = {"per_table_teds_struct": [1.0, 0.5, 0.75, 0.25]}
    b = {"per_table_teds_struct": [0.5, 0.5, 0.25, 0.5]}
    mean, se, ahead, behind = paired_gain(a, b)
    d = [0.5, 0.0, 0.5, -0.25]
    assert mean == pytest.approx(0.1875)
    sd = math.sqrt(sum((x - 0.1875) ** 2 for x in d) / 3)
    assert se == pytest.approx(sd / 2)
    assert (ahead, behind) == (2, 1)


def test_paired_gain_refuses_arms_scored_on_different_tables():
    with pytest.raises(ValueError):
        paired_gain({"per_table_teds_struct": [1.0, 0.0]}, {"per_table_teds_struct": [1.0]})


def test_the_per_seed_table_reads_each_runs_results_and_tokenizer(tmp_path):
    from bench.unitable import SEED_COLUMNS, seed_rows
    from core.config import load
    from core.runs import RunDir
    from tables.config import UniTableJobConfig

    runs = []
    for seed, pre, scratch, codes in ((0, [0.9, 0.8, 0.7], [0.8, 0.8, 0.6], 40), (1, [0.5, 0.5, 0.5], [0.6, 0.5, 0.6], 3)):
        run = RunDir.create("unitable", tmp_path)
        run.write_config(load(UniTableJobConfig, "configs/unitable/tiny.yaml", [f"seed={seed}"]))
        arm = lambda per: {"synthetic": {"teds_struct": sum(per) / 3, "tables": 3, "per_table_teds_struct": per,
                                         "seconds_per_table": 0.1}}
        run.write_json("results.json", {"results": {"pretrained": arm(pre), "scratch": arm(scratch)}})
        run.file("metrics.jsonl").write_text(json.dumps({"stage": "render", "seconds": 1.0}) + "\n" + json.dumps(
            {"stage": "tokenizer", "codes_used": codes, "codebook": 256, "code_perplexity": codes / 4}) + "\n")
        runs.append(run.path)
    rows, gains = seed_rows(runs)
    assert [len(r) for r in rows] == [len(SEED_COLUMNS)] * 2
    assert gains == pytest.approx([0.2 / 3, -0.2 / 3])
    assert rows[0][0] == 0 and rows[0][4] == "2 / 0" and rows[1][4] == "0 / 2"
    assert rows[0][-1] == "40 of 256 (10.0)" and rows[1][5] == "-"

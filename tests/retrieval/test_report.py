"""The ReFusion report's targets, judged on the table's numbers."""

from retrieval.report import latency_targets, targets


def test_targets_judge_accuracy_and_both_latencies_against_no_retrieval():
    agg = {"none": {"mean": 0.60, "std": 0.03}, "refusion": {"mean": 0.62, "std": 0.02}}
    cost = {"none": {"latency_s": 1.0, "latency_vs_none": 1.0}, "refusion": {"latency_s": 1.0, "latency_vs_none": 1.25},
            "concat": {"latency_s": 1.0, "latency_vs_none": 8.0}}
    got = targets(agg, cost)
    assert got[0].startswith("ReFusion accuracy 0.6200 vs no retrieval 0.6000 -> met")
    assert got[1] == "ReFusion latency 1.25x no retrieval's -> MISSED (target <= 1.2x)"
    assert got[2].startswith("concatenation latency 8.00x no retrieval's -> met")
    assert latency_targets(cost) == got[1:]
    # a run timed before the arms took turns has no ratio: the medians' ratio stands in
    assert latency_targets({"none": {"latency_s": 2.0}, "refusion": {"latency_s": 2.2}})[0].startswith(
        "ReFusion latency 1.10x no retrieval's -> met")
    assert latency_targets({"refusion": {"latency_s": 1.0}}) == []


def test_paired_with_none_by_hand():
    from retrieval.report import aggregate, paired_with_none

    rows = [{"arm": a, "seed": s, "lr": 1e-3, "dev_accuracy": 0.5, "test_accuracy": acc, "choices": ch}
            for a, s, acc, ch in [("none", 1, 0.60, {}), ("none", 2, 0.70, {}), ("none", 3, 0.50, {}),
                                  ("refusion", 1, 0.62, {"m0": "reranker"}), ("refusion", 2, 0.70, {"m0": "none"}),
                                  ("refusion", 3, 0.54, {"m0": "reranker"})]]
    (line,) = paired_with_none(aggregate(rows))
    # differences +2, 0, +4 points: mean +2.00, sd 2.00, t = 2 / (2 / sqrt 3) = 1.73
    assert "paired over 3 seeds: +2.00 points (sd 2.00, t = 1.73; ahead on 2, level on 1, behind on 0)" in line
    assert line.endswith("candidates kept over modules and seeds: reranker 2, none 1")
    assert paired_with_none(aggregate([r for r in rows if r["arm"] != "none"])) == []

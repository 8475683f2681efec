"""The ReFusion job: bad input exits 2 naming the field before Ray starts; a tiny run drives every
arm through Ray Tune trials (dev accuracy reported with checkpoints) and writes the table."""

import json

import pytest

from tests.ray_jobs.jobs import run_job

TINY = "configs/refusion/tiny.yaml"


def _run(tmp_path, *args):
    return run_job("refusion", TINY, tmp_path, "--set", f"corpus.cache_dir={tmp_path}/cache", *args)


@pytest.mark.parametrize(
    "override,message",
    [
        ("k=100000", "'k': k=100000 is above the corpus size"),
        ("model.name=tiny-llama", "'model.name': a llama encoder has no supported key/value projections; "
                                  "supported families: bert, roberta"),
        ("model.name=/no/such/encoder", "'model.name'"),
        ("corpus.min_chars=100000", "'corpus.sources': the corpus is empty"),
        ("arms=[none, rag]", "'arms[1]': 'rag' is not allowed"),
    ],
)
def test_bad_input_exits_2_naming_the_field(tmp_path, override, message):
    proc = _run(tmp_path, "--set", override)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_tiny_run_drives_every_arm_through_tune(ray_session, tmp_path):
    from ray_jobs.refusion import main

    assert main(["--config", TINY, "--set", f"run.root={tmp_path}/runs", "--set", f"corpus.cache_dir={tmp_path}/cache"]) == 0
    (run,) = (tmp_path / "runs" / "refusion").iterdir()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert sorted(r["arm"] for r in rows) == ["concat", "none", "refusion", "tuned_choices"]
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in rows)
    refusion = next(r for r in rows if r["arm"] == "refusion")
    assert len(refusion["choices"]) == 4 and set(refusion["choices"].values()) <= {"none", "reranker", "ordered_mask"}
    results = json.loads((run / "results.json").read_text())
    cost = results["cost"]
    assert cost["concat"]["flops"] > 2 * cost["none"]["flops"]
    assert cost["none"]["latency_vs_none"] == 1.0 and all(c["latency_vs_none"] > 0 for c in cost.values())
    # every trial reported dev accuracy with a checkpoint along the way (num_to_keep=1 keeps the last)
    checkpoints = list((run / "tune").rglob("checkpoint_*/model.pt"))
    assert len(checkpoints) >= len(rows)
    assert (run / "cache" / "test_neighbours.npz").is_file()
    assert "ReFusion" in (run / "summary.md").read_text()

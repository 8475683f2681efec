"""The curation job: bad input exits 2 naming the field before Ray starts; a tiny run writes the
balanced selection, histograms and summary; --resume reuses the embeddings and every level."""

import json

import numpy as np
import pytest

from tests.ray_jobs.jobs import run_job

TINY = "configs/curation/tiny.yaml"


def _run(tmp_path, *args):
    return run_job("curate", TINY, tmp_path, *args)


@pytest.mark.parametrize(
    "override,message",
    [
        ("sample.target=100000", "'sample.target': target=100000 is larger than the pool of 400 points"),
        ("kmeans.levels=[{k: 500}]", "'kmeans.levels[0].k': k=500 clusters is larger than its 400 inputs"),
        ("kmeans.levels=[{k: 5}, {k: 9}]", "kmeans.levels[1].k"),
        ("data=[{name: no_such_pool}]", "data[0].name"),
        ("data=[{name: missing.jsonl}]", "'data[0].name': file not found"),
        ("embeddings=/no/such.npy", "'embeddings': file not found: /no/such.npy"),
        ("workers.num_gpus=2", "workers.num_gpus"),
        ("kmeans.metric=dot", "'kmeans.metric': 'dot' is not allowed; allowed values: 'l2', 'cosine'"),
        ("workers.driver_level_mb=-1", "'workers.driver_level_mb': must be >= 0, got -1"),
        ("embed.concurrency=-1", "'embed.concurrency': must be >= 0 (0: in the driver), got -1"),
    ],
)
def test_bad_input_exits_2_naming_the_field(tmp_path, override, message):
    proc = _run(tmp_path, "--set", override)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing half-written


@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_tiny_run_writes_a_balanced_selection_and_resumes(ray_session, tmp_path):
    from ray_jobs.curate import main

    assert main(["--config", TINY, "--set", f"run.root={tmp_path}/runs"]) == 0
    (run,) = (tmp_path / "runs" / "curate").iterdir()
    rows = [json.loads(x) for x in (run / "selected.jsonl").read_text().splitlines()]
    assert len(rows) == 100 and len({r["id"] for r in rows}) == 100
    from core.data import load_texts

    pool = load_texts("rotten_tomatoes", limit=300) + load_texts("halueval_qa", limit=100)
    assert all(pool[r["id"]] == r["text"] for r in rows)
    for name in ("summary.md", "cluster_sizes.png", "metrics.json", "config.yaml"):
        assert (run / name).is_file(), name
    for t in range(3):
        assert (run / "levels" / f"level{t}" / "level.json").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    top = metrics["levels"][-1]
    assert top["entropy_after"] >= top["entropy_before"]  # the sample is more even over clusters
    assert sum(v["selected"] for v in metrics["sources"].values()) == 100
    assert all(lv["largest_after"] <= lv["largest_before"] for lv in metrics["levels"])

    embeddings = sorted((run / "embeddings").glob("*.parquet"))
    stamp = [p.stat().st_mtime_ns for p in embeddings]
    assert main(["--resume", str(run)]) == 0
    assert [p.stat().st_mtime_ns for p in sorted((run / "embeddings").glob("*.parquet"))] == stamp
    again = [json.loads(x) for x in (run / "selected.jsonl").read_text().splitlines()]
    assert again == rows
    assert "(resumed)" in (run / "summary.md").read_text()


@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_nan_embeddings_exit_2_with_their_count(ray_session, tmp_path, capsys):
    from ray_jobs.curate import main

    x = np.random.default_rng(0).standard_normal((200, 8)).astype(np.float32)
    x[[3, 150]] = np.inf
    np.save(tmp_path / "emb.npy", x)
    code = main(["--config", TINY, "--set", f"run.root={tmp_path}/runs", "--set", f"embeddings={tmp_path}/emb.npy",
                 "--set", "kmeans.levels=[{k: 10}]", "--set", "sample.target=20"])
    assert code == 2
    assert "2 of 200 rows contain NaN or inf (first at id 3)" in capsys.readouterr().err
    assert not any((tmp_path / "runs" / "curate").iterdir())  # the failed run left no directory

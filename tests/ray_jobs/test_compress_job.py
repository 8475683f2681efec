"""The compression job: bad input exits 2 naming the field before Ray starts; a tiny run with two
Ray Train workers writes the table and a Basel model that reloads with trust_remote_code."""

import json

import pytest

from tests.ray_jobs.jobs import run_job

TINY = "configs/compression/tiny.yaml"


def _run(tmp_path, *args):
    return run_job("compress", TINY, tmp_path, *args)


@pytest.mark.parametrize(
    "override,message",
    [
        ("keep_ratios=[0.5, 1.5]", "'keep_ratios[1]': must be in (0, 1], got 1.5"),
        ("keep_ratios=[0]", "'keep_ratios[0]': must be in (0, 1], got 0"),
        ("target_modules=[q_proj, qkv]", "'target_modules': 'qkv' matches no nn.Linear in the model"),
        ("data.max_train_blocks=20", "'data.target': 20 training blocks of 16 tokens give 1 steps"),
        ("model.name=tiny-bert", "'model.name': 'tiny-bert' is a BertModel model, not a causal LM"),
        ("methods=[basel, pca]", "'methods[1]': 'pca' is not allowed"),
        ("train.zero_stage=3", "'train.zero_stage': 3 is not allowed; allowed values: null, 0, 1, 2"),
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
def test_tiny_run_compresses_every_method_and_the_basel_model_reloads(ray_session, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from ray_jobs.compress import main

    assert main(["--config", TINY, "--set", f"run.root={tmp_path}/runs"]) == 0
    (run,) = (tmp_path / "runs" / "compress").iterdir()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["method"] for r in rows] == ["dense", "basel", "svd", "fwsvd", "asvd"]
    dense = rows[0]
    for r in rows[1:]:
        assert r["params"] < dense["params"] and r["file_mb"] < dense["file_mb"]
        assert r["target_ppl"] > 1.0 and r["off_target_ppl"] > 1.0
        assert r["speedup"] > 0 and r["latency_s"] > 0  # timed in turns with the dense model
    assert dense["speedup"] == 1.0
    from compression.bases import matching_linears
    from compression.config import LLAMA_LINEARS
    from core.models import ModelConfig, load_causal_lm

    ref = load_causal_lm(ModelConfig(name="tiny-llama"))
    dense_linear = sum(ref.get_submodule(n).weight.numel() for n in matching_linears(ref, LLAMA_LINEARS))
    assert rows[1]["linear_params"] <= 0.5 * dense_linear  # Basel: pruned to the budget
    # every method on the same budget, within one rank of it (the baselines take the leftover ranks)
    widest = max(sum(ref.get_submodule(n).weight.shape) for n in matching_linears(ref, LLAMA_LINEARS))
    for r in rows[1:]:
        assert r["budget"] == int(0.5 * dense_linear)
        assert r["budget"] - widest < r["linear_params"] <= r["budget"], r["method"]
    assert len(set(json.loads((run / "asvd-0.5-ranks.json").read_text()).values())) > 1  # searched, not uniform
    assert (run / "perplexity_vs_ratio.png").is_file() and (run / "summary.md").is_file()
    model = AutoModelForCausalLM.from_pretrained(str(run / "models" / "basel-0.5"), trust_remote_code=True)
    out = model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 6)
    assert not (run / "models" / "svd-0.5").exists()  # only Basel's models are kept


@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_basel_relearns_under_deepspeed_zero1_on_cpu(ray_session, tmp_path):
    from ray_jobs.compress import main

    assert main(["--config", TINY, "--set", f"run.root={tmp_path}/runs", "--set", "train.zero_stage=1",
                 "--set", "methods=[basel]"]) == 0
    (run,) = (tmp_path / "runs" / "compress").iterdir()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["method"] for r in rows] == ["dense", "basel"]
    history = json.loads((run / "basel-0.5-history.json").read_text())
    assert history[-1]["params"] == rows[1]["linear_params"]  # what the workers pruned to is what was saved


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_resume_keeps_finished_rows_and_the_calibration_statistics(ray_session, tmp_path):
    from ray_jobs.compress import main

    base = ["--set", "methods=[svd, fwsvd, asvd]", "--set", "keep_ratios=[0.5, 0.3]"]
    assert main(["--config", TINY, "--set", f"run.root={tmp_path}/runs", *base]) == 0
    (run,) = (tmp_path / "runs" / "compress").iterdir()
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["method"] for x in lines] == ["dense", "svd", "fwsvd", "asvd", "svd", "fwsvd", "asvd"]
    stats = run / "target_stats.pt"
    stamp = stats.stat().st_mtime_ns
    # an interruption after svd at 0.3: the rows after it were never written; mark a kept row so a
    # recomputation would show
    kept = [json.loads(x) for x in lines[:5]]
    kept[2]["target_ppl"] = 12345.0
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    assert main(["--resume", str(run)]) == 0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["method"], r["ratio"]) for r in rows] == [
        ("dense", 1.0), ("svd", 0.5), ("fwsvd", 0.5), ("asvd", 0.5), ("svd", 0.3), ("fwsvd", 0.3), ("asvd", 0.3)]
    assert rows[2]["target_ppl"] == 12345.0  # kept, not recomputed
    assert stats.stat().st_mtime_ns == stamp  # statistics read back, not recomputed
    assert "12345" in (run / "summary.md").read_text()  # the report covers the kept rows too

"""The runner on real stages without Ray (the mini recipe): skip, resume, --from, a failing stage,
an incomplete artifact, and the report."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from core.config import from_dict
from core.runs import RunDir
from specialize.artifacts import MARKER, ArtifactStore
from specialize.recipe import SpecializeConfig, build_recipe
from specialize.report import write_report
from specialize.runner import StageFailed, run_recipe


def run(d, run_dir, recompute=frozenset(), lookup=()):
    cfg = from_dict(SpecializeConfig, d)
    recipe = build_recipe(cfg)
    rd = RunDir(run_dir)
    rd.path.mkdir(parents=True, exist_ok=True)
    store = ArtifactStore(rd.file("artifacts"), lookup=list(lookup))
    return run_recipe(recipe, rd, store, {s.name: 1.0 for s in recipe.stages}, 2.0, set(recompute)), rd


def status(records):
    return {r.stage: r.status for r in records}


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """The mini recipe run once; tests copy its run directory rather than recompute it."""
    from tests.specialize.conftest import MINI

    path = tmp_path_factory.mktemp("first") / "run"
    records, _ = run(MINI, path)
    return records, path


def copy_run(first, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(first[1], dst)
    return dst


def test_a_run_computes_every_stage_with_real_numbers(first):
    records, path = first
    assert status(records) == {"raw": "ran", "student": "ran", "ppl": "ran"}
    by = {r.stage: r for r in records}
    assert by["raw"].metrics["rows"] == 60
    assert 0.0 <= by["student"].metrics["test_accuracy"] <= 1.0
    assert by["student"].metrics["train_examples"] == 60
    # a random tiny Llama's perplexity is near its vocabulary size, far above 1
    assert by["ppl"].metrics["domain_ppl"] > 100 and by["ppl"].metrics["off_domain_ppl"] > 100
    for r in records:
        assert (r.artifact / MARKER).is_file()
    meta = json.loads((by["student"].artifact / "model" / "model.json").read_text())
    assert meta["family"] == "classifier" and meta["label_names"] == ["rotten", "fresh"]


def test_a_rerun_skips_every_complete_stage(first, tmp_path, mini):
    path = copy_run(first, tmp_path)
    records, _ = run(mini, path)
    assert status(records) == {"raw": "skipped", "student": "skipped", "ppl": "skipped"}
    assert [r.metrics for r in records] == [r.metrics for r in first[0]]


def test_a_new_run_reuses_an_earlier_runs_artifacts(first, tmp_path, mini):
    records, _ = run(mini, tmp_path / "second", lookup=[first[1] / "artifacts"])
    assert set(status(records).values()) == {"skipped"}
    assert all(r.artifact.parent == tmp_path / "second" / "artifacts" for r in records)


def test_resume_recomputes_only_what_is_missing(first, tmp_path, mini):
    path = copy_run(first, tmp_path)
    ppl = next(r for r in first[0] if r.stage == "ppl")
    shutil.rmtree(path / "artifacts" / ppl.artifact.name)
    records, _ = run(mini, path)
    assert status(records) == {"raw": "skipped", "student": "skipped", "ppl": "ran"}
    assert records[2].metrics == ppl.metrics  # the same numbers as the first time


def test_from_recomputes_the_stage_and_what_reads_it(first, tmp_path, mini):
    path = copy_run(first, tmp_path)
    recipe = build_recipe(from_dict(SpecializeConfig, mini))
    records, _ = run(mini, path, recompute=recipe.descendants("raw"))
    assert status(records) == {"raw": "ran", "student": "skipped", "ppl": "ran"}
    assert records[2].metrics == next(r for r in first[0] if r.stage == "ppl").metrics


def test_an_incomplete_artifact_is_recomputed(first, tmp_path, mini):
    path = copy_run(first, tmp_path)
    student = next(r for r in first[0] if r.stage == "student")
    (path / "artifacts" / student.artifact.name / "model" / "weights.pt").unlink()
    records, _ = run(mini, path)
    assert status(records) == {"raw": "skipped", "student": "ran", "ppl": "skipped"}
    a = torch.load(path / "artifacts" / student.artifact.name / "model" / "weights.pt")
    b = torch.load(student.artifact / "model" / "weights.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # seeded: the same weights


def test_stages_that_ran_at_once_give_what_they_give_alone(first, tmp_path, mini):
    # student and ppl ran at once in `first`; in one process they drew from one torch RNG, and
    # which stage seeded it when decided both artifacts (CI saw other weights and perplexities)
    serial = dict(mini, max_concurrent_stages=1)
    records, _ = run(serial, tmp_path / "serial")
    assert [r.metrics for r in records] == [r.metrics for r in first[0]]
    a = torch.load(records[1].artifact / "model" / "weights.pt")
    b = torch.load(first[0][1].artifact / "model" / "weights.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_failing_stage_keeps_earlier_artifacts_and_the_run_resumes_from_it(first, tmp_path, mini):
    bad = json.loads(json.dumps(mini))
    bad["stages"][2]["config"]["off_target"] = str(tmp_path / "missing.jsonl")
    path = tmp_path / "run"
    with pytest.raises(StageFailed) as info:
        run(bad, path)
    assert info.value.stage == "ppl" and "missing.jsonl" in str(info.value)
    got = status(info.value.records)
    assert got == {"raw": "ran", "student": "ran", "ppl": "failed"}
    kept = sorted(p.name for p in (path / "artifacts").iterdir())
    assert len(kept) == 2 and all(n.startswith(("raw-", "student-")) for n in kept)
    # the failure is reported in summary.md, naming the stage and how to go on
    text = write_report(from_dict(SpecializeConfig, bad), RunDir(path), info.value.records, failure=str(info.value))
    assert "stage 'ppl' failed" in text and "--resume" in text
    # fixed, the run goes on from the failed stage: the others are not recomputed
    records, _ = run(mini, path)
    assert status(records) == {"raw": "skipped", "student": "skipped", "ppl": "ran"}


def test_summary_has_one_row_per_stage_and_a_plot(first, tmp_path, mini):
    path = copy_run(first, tmp_path)
    text = write_report(from_dict(SpecializeConfig, mini), RunDir(path), first[0])
    table = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert table[0].startswith("| stage | kind | metric | value")
    rows = {line.split(" | ")[0].strip("| ") for line in table[1:4]}
    assert rows == {"raw", "student", "ppl"}
    assert (path / "metrics.png").stat().st_size > 1000
    assert "artifacts/student-" in text


def test_a_chatie_stage_scores_the_model_it_is_given(tmp_path):
    d = {"seed": 0, "stages": [{"name": "ie", "kind": "chatie", "config": {
        "model": {"name": "tiny-llama"}, "pool": {"actors": 0}, "batch_size": 4,
        "chat": {"methods": ["chatie", "single_turn"], "max_new_tokens": 6, "batch_inputs": 3},
        "datasets": [{"name": "ner3", "task": "ner", "path": "tests/ie/data/ner.jsonl", "schema": "wnut17"}]}}]}
    records, _ = run(d, tmp_path / "run")
    m = records[0].metrics
    assert records[0].status == "ran" and m["metric"] == "chatie_f1"
    assert 0.0 <= m["ner3/chatie_f1"] <= 1.0 and 0.0 <= m["ner3/single_turn_f1"] <= 1.0
    report = json.loads((records[0].artifact / "report" / "report.json").read_text())
    assert {r["method"] for r in report} == {"chatie", "single_turn"}


def test_lm_eval_reports_halueval_by_text_and_by_likelihood(tmp_path, mini):
    mini["stages"] = [mini["stages"][0], {**mini["stages"][2], "config": {
        **mini["stages"][2]["config"], "datasets": [{"name": "halueval_qa", "items": 2, "evaluators": ["halueval"]}],
        "prompt_format": "raw", "pool": {"actors": 0}, "batch_size": 2}}]
    records, _ = run(mini, tmp_path / "run")
    m = records[1].metrics
    for way in ("text", "likelihood"):
        assert f"halueval_qa/halueval/{way}" in m
        assert 0.0 <= m[f"halueval_qa/halueval/{way}/invalid_share"] <= 1.0
    assert m["halueval_qa/halueval/likelihood/invalid_share"] == 0.0  # a likelihood always picks an option

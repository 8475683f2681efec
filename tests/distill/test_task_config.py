import numpy as np
import pytest

from core.config import ConfigError, from_dict
from core.data import TextDataset
from distill.config import GoldConfig, TaskConfig
from distill.task import Sample, TaskSpec, build_task, pick_seed_examples, task_from_data

TEXTS = [f"review {i}" for i in range(12)]
LABELS = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2])


def test_seed_examples_take_labels_in_turn_and_repeat_with_the_seed():
    ex = pick_seed_examples(TEXTS, LABELS, 3, 5, seed=7)
    assert [e.label for e in ex] == [0, 1, 2, 0, 1]
    assert all(LABELS[int(e.text.split()[1])] == e.label and e.kind == "seed" for e in ex)
    assert pick_seed_examples(TEXTS, LABELS, 3, 5, seed=7) == ex
    assert len({tuple(x.text for x in pick_seed_examples(TEXTS, LABELS, 3, 3, seed=s)) for s in range(8)}) > 1
    # a label that runs out is skipped, the rest fill the count
    more = pick_seed_examples(TEXTS, LABELS, 3, 6, seed=0)
    assert [e.label for e in more] == [0, 1, 2, 0, 1, 0]
    assert pick_seed_examples(TEXTS, LABELS, 3, 0, seed=0) == []


def test_build_task_renames_labels_but_only_one_for_one():
    task = build_task("d", "review", ["neg", "mid", "pos"], TEXTS, LABELS, 3, seed=0,
                      label_names=["bad", "so-so", "good"])
    assert task.label_names == ("bad", "so-so", "good") and task.label_index(" GOOD ") == 2
    with pytest.raises(ConfigError) as e:
        build_task("d", "review", ["neg", "mid", "pos"], TEXTS, LABELS, 3, seed=0, label_names=["bad", "good"])
    assert e.value.key == "task.label_names" and "3 labels" in str(e.value)
    with pytest.raises(ConfigError) as e:
        task.label_index("excellent")
    assert e.value.key == "task.label_names" and "so-so" in str(e.value)


def test_task_from_data_uses_the_dataset_labels_unless_renamed():
    train = TextDataset(TEXTS, LABELS, ["neg", "mid", "pos"], "fp")
    task = task_from_data(from_dict(TaskConfig, {"seed_examples": 4}), train, seed=0)
    assert task.label_names == ("neg", "mid", "pos") and [e.label for e in task.examples] == [0, 1, 2, 0]
    assert task.description == TaskConfig().description and task.sample_noun == "movie review snippet"
    renamed = task_from_data(from_dict(TaskConfig, {"label_names": ["bad", "meh", "good"]}), train, seed=0)
    assert renamed.label_names == ("bad", "meh", "good") and renamed.examples == task.examples[:3]
    with pytest.raises(ConfigError) as e:
        task_from_data(from_dict(TaskConfig, {"label_names": ["bad", "good"]}), train, seed=0)
    assert e.value.key == "task.label_names"


def test_task_spec_rejects_examples_with_unknown_labels():
    with pytest.raises(ConfigError) as e:
        TaskSpec(("a", "b"), "d", "n", (Sample("text here", 2, "seed"),))
    assert e.value.key == "task.label_names"


def test_default_config_is_valid_and_spends_the_same_budget_with_or_without_feedback():
    cfg = from_dict(GoldConfig, {})
    assert (cfg.samples_per_label(), cfg.probes_per_label()) == (8, 4)
    zerogen = from_dict(GoldConfig, {}, ["feedback.strategy=none"])
    assert (zerogen.samples_per_label(), zerogen.probes_per_label()) == (12, 0)


@pytest.mark.parametrize("override,key,needle", [
    ("feedback.strategy=best", "feedback.strategy", "'band'"),
    ("filter.noise=0.6", "feedback.band_low", "1 - filter.noise"),
    ("feedback.band_high=0.8", "feedback.band_high", "allowed keys"),
    ("feedback.band_low=-0.1", "feedback.band_low", "[0, 1)"),
    ("feedback.every=0", "feedback.every", ">= 1"),
    ("feedback.temperature=0", "feedback.temperature", "> 0"),
    ("filter.noise=1", "filter.noise", "[0, 1)"),
    ("filter.noise_percentile=0.9", "filter.noise_percentile", "allowed keys"),
    ("student.final_loss=kl", "student.final_loss", "'sce'"),
    ("generation.max_chars=11", "generation.max_chars", "min_chars"),
    ("generation.top_p=0", "generation.top_p", "(0, 1]"),
    ("generation.samples_per_label=0", "generation.samples_per_label", ">= 1"),
    ("generation.probes_per_label=0", "generation.probes_per_label", "strategy"),
    ("student.loss=mse", "student.loss", "'sce'"),
    ("student.lr=0", "student.lr", "> 0"),
    ("student.model.name=nope", "student.model.name", "minilm"),
    ("teacher.hf.batch_size=0", "teacher.hf.batch_size", ">= 1"),
    ("teacher.backend=vllm", "teacher.backend", "'openai'"),
    ("task.label_names=[good, Good]", "task.label_names", "unique"),
    ("task.seed_examples=-1", "task.seed_examples", ">= 0"),
    ("iterations=0", "iterations", ">= 1"),
    ("students=3", "students", "allowed keys"),
])
def test_config_errors_name_the_field(override, key, needle):
    with pytest.raises(ConfigError) as e:
        from_dict(GoldConfig, {}, [override])
    assert e.value.key == key and needle in str(e.value)


def test_zerogen_needs_no_probes():
    cfg = from_dict(GoldConfig, {}, ["feedback.strategy=none", "generation.probes_per_label=0"])
    assert (cfg.samples_per_label(), cfg.probes_per_label()) == (8, 0)


@pytest.mark.parametrize("path", ["configs/gold/laptop.yaml", "configs/gold/cluster.yaml"])
def test_the_final_student_distils_with_the_papers_sce(path):
    """The paper's final distillation: SCE with alpha 0.1, beta 1; the per-iteration student keeps CE."""
    from pathlib import Path

    from distill.experiment import GoldJobConfig
    from tests.conftest import load_shipped

    job = load_shipped(GoldJobConfig, Path(__file__).resolve().parents[2] / path)
    final = job.gold.final_student()
    assert (final.loss, final.sce_alpha, final.sce_beta) == ("sce", 0.1, 1.0)
    assert job.gold.student.loss == "ce"
    # one noise setting, the paper's: the top 20% is noise and the feedback band ends at 0.8
    assert job.gold.filter.noise == 0.2 or job.search.noise == [0.1, 0.2]
    assert job.gold.band_high() == pytest.approx(1.0 - job.gold.filter.noise)


def test_the_final_student_is_trained_with_the_final_loss(monkeypatch):
    import distill.gold as gold

    seen = {}
    monkeypatch.setattr(gold, "train_student", lambda cfg, *a, **k: seen.setdefault("cfg", cfg))
    cfg = from_dict(GoldConfig, {"student": {"final_loss": "sce"}})
    gold.train_final_student([Sample("a review", 0)], TaskSpec(("neg", "pos"), "d", "review", ()), cfg)
    assert seen["cfg"].loss == "sce" and cfg.student.loss == "ce"

"""GOLD's final student on Ray Train (distill.ray_train): one worker trains the in-process
student's weights; two DDP workers with batch b train the in-process student with batch 2b;
a DeepSpeed ZeRO-2 engine steps like the plain optimizer. The sharding, config and plan checks
need no Ray (they do not take the ray_session fixture)."""

import numpy as np
import pytest
import torch

from core.config import ConfigError, from_dict
from distill.config import GoldConfig
from distill.experiment import GoldJobConfig
from distill.gold import train_final_student
from distill.student import epoch_order
from distill.task import Sample, TaskSpec
from ray_jobs import plans
from tests.conftest import RAY

TASK = TaskSpec(("rotten", "fresh"), "Film reviews.", "review",
                (Sample("A dull, lifeless slog.", 0, "seed"), Sample("A joyous triumph.", 1, "seed")))
POOL = [Sample(t, y) for t, y in [
    ("good great wonderful", 1), ("great fun, good", 1), ("wonderful and good", 1), ("a good, warm film", 1),
    ("great acting, great fun", 1), ("wonderful, just wonderful", 1), ("bad awful boring", 0),
    ("awful, bad mess", 0), ("boring bad film", 0), ("a bad, dull mess", 0), ("awful acting, boring", 0),
    ("bad, just bad", 0)]]
TEXTS, LABELS = [s.text for s in POOL], [s.label for s in POOL]

pytestmark = RAY  # the Ray Train tests share the session's Ray; the rest are cheap


def _cfg(ray_train: dict | None = None, **student) -> GoldConfig:
    s = {"model": {"name": "tiny-bert", "max_length": 16}, "adapter": {"type": "head"}, "lr": 0.05,
         "batch_size": 2, "final_epochs": 4, "ray_train": ray_train}
    s.update(student)
    return from_dict(GoldConfig, {"teacher": {"hf": {"model": {"name": "tiny-llama"}}}, "student": s, "seed": 5})


def _assert_same_weights(a, b, atol):
    sa, sb = a.trainable_state(), b.trainable_state()
    assert set(sa) == set(sb)
    for name in sa:
        assert torch.allclose(sa[name], sb[name], atol=atol, rtol=0), (name, (sa[name] - sb[name]).abs().max())


@pytest.mark.parametrize("n,world", [(12, 1), (12, 2), (11, 2), (5, 4), (1, 3)])
def test_epoch_order_deals_one_seeded_permutation_out_in_equal_shares(n, world):
    shards = [epoch_order(n, seed=7, epoch=1, rank=r, world=world) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # the same number of steps on every worker
    assert set(np.concatenate(shards).tolist()) == set(range(n))  # every sample, padding only repeats
    whole = epoch_order(n, seed=7, epoch=1)
    assert sorted(whole.tolist()) == list(range(n))
    # rank::world of the padded permutation: the union of step t's batches is a contiguous chunk
    padded = np.resize(whole, len(shards[0]) * world)
    for r, s in enumerate(shards):
        assert np.array_equal(s, padded[r::world])
    assert np.array_equal(epoch_order(n, 7, 1, 0, world), shards[0])  # seeded: repeats
    if n > 2:
        assert not np.array_equal(epoch_order(n, 7, 2), whole)  # another epoch, another order


def test_a_bad_zero_stage_under_gold_student_ray_train_is_a_config_error_naming_it():
    with pytest.raises(ConfigError) as err:
        from_dict(GoldJobConfig, {"gold": {"student": {"ray_train": {"num_workers": 2, "zero_stage": 3}}}})
    assert err.value.key == "gold.student.ray_train.zero_stage"
    assert "allowed values: null, 0, 1, 2" in str(err.value)
    job = from_dict(GoldJobConfig, {}, ["gold.student.ray_train.num_workers=2"])  # --set into a null section
    assert job.gold.student.ray_train.num_workers == 2 and job.gold.student.ray_train.zero_stage is None
    assert from_dict(GoldJobConfig, {}).gold.student.ray_train is None


def test_the_gold_plan_places_the_student_workers_beside_the_teacher_actors():
    job = from_dict(GoldJobConfig, {"gold": {"teacher": {"pool": {"actors": 4, "num_gpus": 1}},
                                             "student": {"ray_train": {"num_workers": 4, "use_gpu": True,
                                                                       "zero_stage": 2}}}})
    lines = plans.plan_gold(job, {"CPU": 96.0, "GPU": 8.0})
    assert any(line.startswith("Ray Train workers (final student): 4 x (1 CPU, 1 GPU)") and "ZeRO-2" in line
               for line in lines), lines
    with pytest.raises(ConfigError) as err:  # 4 GPUs, all held by the teacher
        plans.plan_gold(job, {"CPU": 96.0, "GPU": 4.0})
    assert err.value.key == "gold.student.ray_train.use_gpu" and "teacher actor" in str(err.value)


def test_no_ray_train_line_without_ray_train():
    lines = plans.plan_gold(from_dict(GoldJobConfig, {}), {"CPU": 8.0, "GPU": 0.0})
    assert not any("Ray Train" in line for line in lines)


def test_one_worker_trains_the_in_process_student(ray_session, tmp_path):
    local = train_final_student(POOL, TASK, _cfg())
    remote = train_final_student(POOL, TASK, _cfg({"num_workers": 1, "cpus_per_worker": 0.5}),
                                 storage=tmp_path, name="one")
    assert remote.steps == local.steps == 4 * 6
    _assert_same_weights(remote, local, atol=1e-6)
    assert (tmp_path / "one").is_dir()  # Ray Train's run lives under `storage`


def test_two_ddp_workers_with_batch_b_train_the_in_process_student_with_batch_2b(ray_session, tmp_path):
    remote = train_final_student(POOL, TASK, _cfg({"num_workers": 2, "cpus_per_worker": 0.5}),
                                 storage=tmp_path, name="two")
    assert remote.steps == 4 * 3
    assert remote.evaluate(TEXTS, LABELS)["accuracy"] > 0.5  # above chance on its own pool
    # each step's two batches are one contiguous chunk of the whole permutation (epoch_order),
    # and DDP averages equal-sized batches' gradients: one batch of 2b in one process
    local = train_final_student(POOL, TASK, _cfg(batch_size=4))
    _assert_same_weights(remote, local, atol=1e-4)


def test_deepspeed_zero2_on_one_worker_steps_like_the_plain_optimizer(ray_session, tmp_path):
    remote = train_final_student(POOL, TASK, _cfg({"num_workers": 1, "cpus_per_worker": 0.5, "zero_stage": 2}),
                                 storage=tmp_path, name="zero2")
    assert remote.steps == 4 * 6
    _assert_same_weights(remote, train_final_student(POOL, TASK, _cfg()), atol=1e-4)

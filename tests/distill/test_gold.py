import json

import pytest
import torch

from core.config import from_dict
from core.llm import HFBackend
from distill.config import GoldConfig
from distill.energy import energy_ranks
from distill.gold import EmptyGenerationError, GoldState, gold_iteration, initial_state, train_final_student
from distill.prompts import NOVELTY
from distill.student import Student
from distill.task import Sample, TaskSpec

TASK = TaskSpec(("rotten", "fresh"), "Film reviews.", "review",
                (Sample("A dull, lifeless slog.", 0, "seed"), Sample("A joyous triumph.", 1, "seed")))
DEV = (["good fun", "bad mess", "great", "awful"], [1, 0, 1, 0])


class RecordingBackend(HFBackend):
    """The real tiny-LM backend, keeping the prompts it was given."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[list] = []

    def generate(self, prompts, params, seeds):
        self.calls.append(list(prompts))
        return super().generate(prompts, params, seeds)


def _cfg(*overrides: str) -> GoldConfig:
    base = {"teacher": {"hf": {"model": {"name": "tiny-llama"}}},
            "generation": {"samples_per_label": 3, "probes_per_label": 4, "max_new_tokens": 8, "min_chars": 5},
            "student": {"model": {"name": "tiny-bert", "max_length": 32}, "adapter": {"type": "head"},
                        "batch_size": 4, "lr": 0.05},
            "feedback": {"every": 1}, "filter": {"noise": 0.25}}
    return from_dict(GoldConfig, base, list(overrides))


@pytest.fixture(scope="module")
def backend():
    return RecordingBackend.from_config(_cfg().teacher.hf.model, batch_size=8)


def _user_texts(prompts):
    return [next(m["content"] for m in chat if m["role"] == "user") for chat in prompts]


def test_one_iteration_end_to_end(backend):
    cfg = _cfg()
    student = Student.build(cfg.student, TASK.label_names, seed=0)
    backend.calls.clear()
    state, m = gold_iteration(initial_state(TASK), TASK, backend, student, cfg, dev=DEV)
    gen_prompts, probe_prompts = backend.calls
    assert len(gen_prompts) == 6 and len(probe_prompts) == 8  # 3 samples and 4 probes per label
    assert not any(NOVELTY in u for u in _user_texts(gen_prompts)) and all(NOVELTY in u for u in _user_texts(probe_prompts))
    assert state.iteration == 1 and state.student_trained
    generated = [s for s in state.pool if s.kind == "generated"]
    probes = [s for s in state.pool if s.kind == "probe"]
    # the tiny LM's 8-token outputs all parse, have valid lengths and differ
    assert m["malformed"] + m["bad_length"] + m["duplicate"] == 0 and m["probes"] == 8
    assert [s.label for s in generated] == [0, 0, 0, 1, 1, 1]  # the labels asked for, not guessed
    assert all(s.energy is None for s in generated)  # iteration 0: no trained student, no noise filter
    # probes: the two highest of 8 energies are noise (noise 0.25), the band [4, 6) up to them is the feedback
    assert m["filtered"] == 2 and len(probes) == 6
    energies = student.energies([s.text for s in probes] + [s.text for s in state.feedback])
    all_probe_e = torch.tensor([s.energy for s in probes] + [s.energy for s in state.feedback])
    assert torch.allclose(energies, all_probe_e, atol=1e-5)  # recorded energies are the student's
    assert len(state.feedback) == 2 and all(s.kind == "probe" for s in state.feedback)
    probe_e = torch.tensor([s.energy for s in probes])
    order = energy_ranks(probe_e)
    assert sorted(s.energy for s in state.feedback) == pytest.approx(probe_e[order[4:6]].tolist())
    assert m["feedback_mean_energy"] == pytest.approx(sum(s.energy for s in state.feedback) / 2)
    assert 0.0 <= m["dev_accuracy"] <= 1.0 and m["kept"] == len(state.pool)
    assert m["generated"] == 14 == m["malformed"] + m["bad_length"] + m["duplicate"] + m["pool_size"] + m["filtered"]


def test_feedback_goes_into_the_next_prompts_and_noise_is_dropped_once_trained(backend):
    cfg = _cfg()
    student = Student.build(cfg.student, TASK.label_names, seed=0)
    state, _ = gold_iteration(initial_state(TASK), TASK, backend, student, cfg)
    backend.calls.clear()
    nxt, m = gold_iteration(state, TASK, backend, student, cfg)
    assert m["feedback_in_prompt"] == 2
    for prompts in backend.calls:
        for u in _user_texts(prompts):
            assert all(fb.text in u for fb in state.feedback)
            assert u.index(TASK.examples[-1].text) < u.index(state.feedback[0].text)  # after the seeds
    new_generated = [s for s in nxt.pool[len(state.pool):] if s.kind == "generated"]
    assert all(s.energy is not None and s.iteration == 1 for s in new_generated)
    # 6 generated and 8 probes, each batch loses its ranks from floor(0.75 n) up: 2 + 2
    assert m["malformed"] + m["bad_length"] + m["duplicate"] == 0
    assert m["filtered"] == 4 and m["kept"] == 14 - 4
    dropped_gen = 6 - len(new_generated)
    assert dropped_gen == 2
    assert nxt.seen >= state.seen and len(nxt.seen) > len(state.seen)
    # nothing in the pool repeats
    keys = [s.text.casefold() for s in nxt.pool]
    assert len(keys) == len(set(keys))


def test_without_drop_the_noise_joins_the_pool_and_still_ends_the_band(backend):
    """filter.drop=false: the same generations and the same feedback (the band still stops at the
    noise cut), but every cleaned sample joins the pool, as many as ZeroGen keeps."""
    runs = {}
    for drop in ("true", "false"):
        cfg = _cfg(f"filter.drop={drop}")
        student = Student.build(cfg.student, TASK.label_names, seed=0)
        state, _ = gold_iteration(initial_state(TASK), TASK, backend, student, cfg)
        nxt, m = gold_iteration(state, TASK, backend, student, cfg)
        runs[drop] = state, nxt, m
    (s_on, n_on, m_on), (s_off, n_off, m_off) = runs["true"], runs["false"]
    assert [x.text for x in s_off.feedback] == [x.text for x in s_on.feedback] and len(s_off.feedback) == 2
    assert m_on["filtered"] == 4 and m_off["filtered"] == 0
    assert len(s_off.pool) == 14 and len(n_off.pool) == 28 and m_off["kept"] == 14
    assert {x.text for x in n_on.pool} < {x.text for x in n_off.pool}
    # iteration 1's band is ranks [4, 6) of 8 probes either way: the top two are noise, not feedback
    probes = torch.tensor([x.energy for x in n_off.pool if x.kind == "probe" and x.iteration == 1])
    assert probes.numel() == 8
    top = set(energy_ranks(probes)[6:].tolist())
    assert not top & {i for i, e in enumerate(probes.tolist()) if e in {f.energy for f in n_off.feedback}}


def test_feedback_only_on_every_nth_iteration(backend):
    cfg = _cfg("feedback.every=2")
    student = Student.build(cfg.student, TASK.label_names, seed=0)
    state, _ = gold_iteration(initial_state(TASK), TASK, backend, student, cfg)
    backend.calls.clear()
    _, m = gold_iteration(state, TASK, backend, student, cfg)
    assert m["feedback_in_prompt"] == 0
    assert not any(fb.text in u for prompts in backend.calls for u in _user_texts(prompts) for fb in state.feedback)


def test_an_iteration_repeats_with_the_seed_and_changes_with_it(backend):
    def run(seed):
        cfg = _cfg(f"seed={seed}")
        student = Student.build(cfg.student, TASK.label_names, seed=cfg.seed)
        state, m = gold_iteration(initial_state(TASK), TASK, backend, student, cfg)
        return state.to_dict(), m, student.trainable_state()

    a, b, c = run(0), run(0), run(1)
    assert a[0] == b[0] and a[1] == b[1]
    assert all(torch.equal(a[2][k], b[2][k]) for k in a[2])
    assert [s["text"] for s in a[0]["pool"]] != [s["text"] for s in c[0]["pool"]]


def test_zerogen_spends_the_probe_budget_on_plain_samples(backend):
    cfg = _cfg("feedback.strategy=none")
    student = Student.build(cfg.student, TASK.label_names, seed=0)
    backend.calls.clear()
    state, m = gold_iteration(initial_state(TASK), TASK, backend, student, cfg)
    assert len(backend.calls) == 1 and len(backend.calls[0]) == 14  # (3 + 4) per label, like GOLD's 6 + 8
    assert not any(NOVELTY in u for u in _user_texts(backend.calls[0]))
    assert state.feedback == [] and m["feedback_size"] == 0 and m["probes"] == 0
    assert all(s.kind == "generated" for s in state.pool)


def test_an_empty_generation_round_is_a_clear_error(backend):
    cfg = _cfg("generation.min_chars=390", "generation.max_new_tokens=2")
    student = Student.build(cfg.student, TASK.label_names, seed=0)
    with pytest.raises(EmptyGenerationError) as e:
        gold_iteration(initial_state(TASK), TASK, backend, student, cfg)
    assert "none of 6 generations" in str(e.value) and "390 < length < 400" in str(e.value)


def test_state_round_trips_through_json_and_the_final_student_trains_on_the_pool(backend):
    cfg = _cfg("student.final_epochs=2")
    student = Student.build(cfg.student, TASK.label_names, seed=0)
    state, _ = gold_iteration(initial_state(TASK), TASK, backend, student, cfg)
    again = GoldState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state
    final = train_final_student(state.pool, TASK, cfg)
    assert final.steps == 2 * -(-len(state.pool) // cfg.student.batch_size)
    fresh = Student.build(cfg.student, TASK.label_names, seed=0)
    texts = [s.text for s in state.pool]
    assert not torch.equal(final.logits(texts), fresh.logits(texts))
    assert torch.equal(final.logits(texts), train_final_student(state.pool, TASK, cfg).logits(texts))
    with pytest.raises(EmptyGenerationError):
        train_final_student([], TASK, cfg)

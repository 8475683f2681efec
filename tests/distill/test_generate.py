import math

import pytest
import torch

from core.models import ModelConfig
from core.seeding import derive_seed
from distill.generate import HFBackend, SamplingParams, filter_logits, sample_token_ids, zero_shot_predict
from distill.task import Sample, TaskSpec


def _gens(n: int, role: str) -> list[torch.Generator]:
    out = []
    for i in range(n):
        g = torch.Generator("cpu")
        g.manual_seed(derive_seed(role, i))
        out.append(g)
    return out


def test_top_k_and_top_p_keep_the_right_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isfinite(filter_logits(logits, 1.0, 2, 1.0)).tolist() == [[True, True, False, False]]
    # nucleus 0.7: 0.5 alone is short of it, 0.5 + 0.3 reaches it
    assert torch.isfinite(filter_logits(logits, 1.0, 0, 0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, 1.0, 0, 0.5)).tolist() == [[True, False, False, False]]
    assert torch.isfinite(filter_logits(logits, 1.0, 0, 0.81)).tolist() == [[True, True, True, False]]
    z = filter_logits(logits, 2.0, 0, 1.0)
    assert torch.allclose(z, logits / 2)


def test_seeded_sampling_follows_the_softmax():
    n = 4000
    logits = torch.tensor([1.0, 0.0, -1.0, 0.5]).expand(n, 4)
    picked = sample_token_ids(logits, SamplingParams(temperature=2.0), _gens(n, "freq"))
    freq = torch.bincount(picked, minlength=4).double() / n
    want = torch.softmax(torch.tensor([1.0, 0.0, -1.0, 0.5], dtype=torch.float64) / 2.0, -1)
    assert torch.allclose(freq, want, atol=0.03), (freq, want)
    # top-k 2 never draws outside the two best; temperature 0 is greedy
    picked_k = sample_token_ids(logits[:500], SamplingParams(top_k=2), _gens(500, "k"))
    assert set(picked_k.tolist()) == {0, 3}
    assert sample_token_ids(logits[:3], SamplingParams(temperature=0.0), []).tolist() == [0, 0, 0]
    # the same generators give the same draws
    again = sample_token_ids(logits, SamplingParams(temperature=2.0), _gens(n, "freq"))
    assert torch.equal(picked, again)


@pytest.fixture(scope="module")
def backend():
    return HFBackend.from_config(ModelConfig(name="tiny-llama"), batch_size=3, seed=0)


# different lengths, so batches are left-padded
CHATS = [[{"role": "user", "content": f"Write review number {i}." + " Make it short." * i}] for i in range(4)]


def test_generation_is_seeded_per_prompt_not_per_batch(backend):
    p = SamplingParams(max_new_tokens=6, temperature=1.0, top_k=20)
    a = backend.generate(CHATS, p, [11, 12, 13, 14])
    assert len(a) == 4 and all(isinstance(t, str) and t.strip() for t in a)
    assert backend.generate(CHATS, p, [11, 12, 13, 14]) == a
    # one prompt alone, with its seed, writes what it wrote inside a padded batch of three
    assert backend.generate(CHATS[1:2], p, [12]) == a[1:2]
    assert backend.generate(CHATS[3:], p, [14]) == a[3:]
    b = backend.generate(CHATS, p, [21, 22, 23, 24])
    assert b != a
    # no global RNG is read: reseeding it changes nothing
    torch.manual_seed(123)
    assert backend.generate(CHATS[:2], p, [11, 12]) == a[:2]
    with pytest.raises(ValueError):
        backend.generate(CHATS, p, [1])


def test_greedy_generation_continues_the_argmax(backend):
    p = SamplingParams(max_new_tokens=3, temperature=0.0)
    text = backend.generate(CHATS[:1], p, [0])[0]
    ids = backend.tokenizer(backend.render(CHATS[0]), return_tensors="pt")["input_ids"]
    with torch.no_grad():
        for _ in range(3):
            ids = torch.cat([ids, backend.model(input_ids=ids).logits[:, -1:].argmax(-1)], dim=1)
    want = backend.tokenizer.decode(ids[0, -3:], skip_special_tokens=True)
    assert text == want


def test_score_is_the_continuation_log_likelihood_and_padding_free(backend):
    chats = [CHATS[0], CHATS[2]]
    conts = [" fresh", " rotten and stale"]
    got = backend.score(chats, conts)
    for chat, cont, s in zip(chats, conts, got):
        p = backend.tokenizer(backend.render(chat))["input_ids"]
        c = backend.tokenizer(cont, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p + c])
        with torch.no_grad():
            logp = backend.model(input_ids=ids).logits.log_softmax(-1)[0]
        want = sum(float(logp[len(p) + j - 1, t]) for j, t in enumerate(c))
        assert s == pytest.approx(want, abs=1e-4)
    backend.batch_size = 1
    try:
        assert backend.score(chats, conts) == pytest.approx(got, abs=1e-4)
    finally:
        backend.batch_size = 3


def test_chat_template_renders_and_a_prefilled_answer_is_continued(backend):
    tok = backend.tokenizer
    old = tok.chat_template
    tok.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}"
                         "{% if not loop.last %}</{{ m['role'] }}>{% endif %}{% endfor %}"
                         "{% if add_generation_prompt %}</{{ messages[-1]['role'] }}><assistant>{% endif %}")
    try:
        chat = [{"role": "user", "content": "hi"}]
        assert backend.render(chat) == "<user>hi</user><assistant>"
        assert backend.render(chat + [{"role": "assistant", "content": "Text:"}]) == "<user>hi</user><assistant>Text:"
        out = backend.generate([chat], SamplingParams(max_new_tokens=4), [5])
        assert len(out) == 1 and isinstance(out[0], str)
    finally:
        tok.chat_template = old
    assert backend.render([{"role": "user", "content": "hi"}]) == "user: hi\n\nassistant:"


def test_zero_shot_predicts_the_label_with_the_highest_score(backend):
    task = TaskSpec(("rotten", "fresh"), "Film reviews.", "review", (Sample("A dull slog.", 0, "seed"),))
    texts = ["Loved every minute.", "Hated it.", "Fine."]
    pred = zero_shot_predict(backend, task, texts)
    from distill.prompts import zero_shot_prompt

    for t, y in zip(texts, pred.tolist()):
        s = backend.score([zero_shot_prompt(task, t)] * 2, [" rotten", " fresh"])
        assert y == max(range(2), key=lambda k: s[k]) and all(math.isfinite(v) for v in s)

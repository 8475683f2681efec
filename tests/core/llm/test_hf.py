"""The hf backend on the random tiny-llama: seeded sampling per prompt, greedy decoding,
continuation scores, chat rendering, and the token-level calls the HTTP server uses."""

import pytest
import torch

from core.llm import HFBackend, SamplingParams, generate_and_score
from core.llm.hf import filter_logits, sample_token_ids
from core.models import ModelConfig
from core.seeding import derive_seed


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


def test_new_ids_stop_before_the_stop_token(backend):
    stop = backend._stop_ids()
    rows = [backend.encode_prompt(c) for c in CHATS]
    p = SamplingParams(max_new_tokens=12, top_k=50)
    new = backend.generate_ids(rows, p, [derive_seed("stop", i) for i in range(4)])
    assert all(len(r) <= 12 for r in new)
    assert not any(t in stop for r in new for t in r)
    # a row that stopped early holds no padding: it equals that prompt generated alone
    for i, r in enumerate(new):
        assert backend.generate_ids([rows[i]], p, [derive_seed("stop", i)]) == [r]


def test_plain_string_prompts_are_sent_as_is(backend):
    text = "Once upon a time"
    assert backend.render(text) == text
    assert backend.encode_prompt(text) == backend.tokenizer(text)["input_ids"]
    p = SamplingParams(max_new_tokens=4, top_k=20)
    assert backend.generate([text, CHATS[0]], p, [3, 4])[0] == backend.generate([text], p, [3])[0]


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
        # the per-token log-probs the server echoes add up to the same number
        chosen, alts = backend.token_logprobs(p + c, top=3)
        assert len(chosen) == len(p) + len(c) - 1 and sum(chosen[-len(c):]) == pytest.approx(want, abs=1e-4)
        assert all(len(a) == 3 and max(a.values()) >= lp - 1e-6 for a, lp in zip(alts, chosen))
    backend.batch_size = 1
    try:
        assert backend.score(chats, conts) == pytest.approx(got, abs=1e-4)
    finally:
        backend.batch_size = 3
    with pytest.raises(ValueError, match="no tokens"):
        backend.score(chats[:1], [""])


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
        # the template writes the special tokens: the tokenizer adds none of its own
        assert backend.encode_prompt(chat) == tok("<user>hi</user><assistant>", add_special_tokens=False)["input_ids"]
        out = backend.generate([chat], SamplingParams(max_new_tokens=4), [5])
        assert len(out) == 1 and isinstance(out[0], str)
    finally:
        tok.chat_template = old
    assert backend.render([{"role": "user", "content": "hi"}]) == "user: hi\n\nassistant:"


def test_the_prefix_cache_gives_the_batched_answers_and_reuses_shared_prompts(backend):
    cached = HFBackend(backend.model, backend.tokenizer, batch_size=3, prefix_cache=True)
    doc = "The committee met on Tuesday and agreed on the budget. " * 6
    # an item's two queries share a long document; options are scored after one prompt; the last
    # prompt shares nothing with the one before
    prompts = [[{"role": "user", "content": doc + "Is A true?"}], [{"role": "user", "content": doc + "Is B true?"}],
               "Unrelated text"]
    conts = ["Yes", "No, it is not"]
    rows = [p for p in prompts for _ in conts]
    want = backend.score(rows, conts * len(prompts))
    got = cached.score(rows, conts * len(prompts))
    assert got == pytest.approx(want, abs=1e-4)
    shared = len(backend.encode_prompt(prompts[0]))
    assert cached.prefix.reused >= shared  # at least the second option of the first prompt
    # greedy and seeded sampling: the same text as the batched path, row by row
    for params in (SamplingParams(max_new_tokens=8, temperature=0.0),
                   SamplingParams(max_new_tokens=8, temperature=1.0, top_k=20)):
        assert cached.generate(prompts + CHATS, params, list(range(7))) == \
            backend.generate(prompts + CHATS, params, list(range(7)))
    # scoring after generation reuses the prompt the generation left in the cache
    before = cached.prefix.reused
    cached.generate([prompts[0]], SamplingParams(max_new_tokens=4, temperature=0.0), [0])
    cached.score([prompts[0]], ["Yes"])
    assert cached.prefix.reused - before >= shared - 1


def test_generate_and_score_reads_each_prompt_once_with_the_prefix_cache(backend):
    doc = "The committee met on Tuesday and agreed on the budget. " * 6
    prompts = [[{"role": "user", "content": doc + q}] for q in ("Is A true?", "Is B true?", "Is C true?")]
    options = [["Yes", "No"], ["Yes", "No"], []]
    params = SamplingParams(max_new_tokens=6, temperature=1.0, top_k=20)
    seeds = [3, 4, 5]
    texts = backend.generate(prompts, params, seeds)
    want = [backend.score([p] * len(o), o) if o else [] for p, o in zip(prompts, options)]
    # batched without the cache: the same as the two calls it stands for
    got = generate_and_score(backend, prompts, params, seeds, options)
    assert [t for t, _ in got] == texts
    assert all(s == pytest.approx(w, abs=1e-4) for (_, s), w in zip(got, want))

    def computed(run) -> int:
        cached = HFBackend(backend.model, backend.tokenizer, batch_size=3, prefix_cache=True)
        out = run(cached)
        assert [t for t, _ in out] == texts
        assert all(s == pytest.approx(w, abs=1e-4) for (_, s), w in zip(out, want))
        return cached.prefix.computed

    def generate_all_then_score(b):
        flat = b.score([p for p, o in zip(prompts, options) for _ in o], [x for o in options for x in o])
        return [(t, flat[2 * i:2 * i + len(o)]) for i, (t, o) in enumerate(zip(b.generate(prompts, params, seeds),
                                                                                    options))]

    # prompt by prompt, the options find their prompt in the cache. Generating all first leaves
    # the last prompt there, so scoring the first two reads their question tails again (less the
    # prompt's last position, which scoring always feeds)
    a, b = backend.encode_prompt(prompts[0]), backend.encode_prompt(prompts[1])
    tail = len(b) - next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)  # what p2 does not share with p1
    interleaved = computed(lambda b: generate_and_score(b, prompts, params, seeds, options))
    assert interleaved + 2 * (tail - 1) == computed(generate_all_then_score)

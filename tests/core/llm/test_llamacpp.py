"""The llamacpp backend on the small SmolLM2 GGUF, from start to stop: generation, label log-probs
against the hf backend (the same Q4_1 weights, dequantized), and no llama-server left running
after a clean stop, a failed start, SIGTERM, or its parent's death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.llm import LLMConfig, LLMError, SamplingParams, build_backend, generate_and_score, rejected_request
from core.llm.config import LlamaCppConfig
from core.llm.llama_server import LlamaServer, server_binary
from core.llm.llamacpp import LlamaCppBackend

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
CFG = LlamaCppConfig(model="smollm2-135m", threads=1, parallel=2, ctx=1024, startup_timeout_s=120)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_gone(pid: int, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def llamacpp():
    backend = LlamaCppBackend.from_config(CFG)
    yield backend
    pid = backend.server.pid
    backend.close()
    assert wait_gone(pid)


@pytest.fixture(scope="module")
def hf():
    from core.llm import HFBackend
    from core.models import ModelConfig

    return HFBackend.from_config(ModelConfig(name="smollm2-135m"), batch_size=4)


REVIEW = [{"role": "system", "content": "You label movie reviews as positive or negative."},
          {"role": "user", "content": "Review: a warm, funny and beautifully acted film.\nLabel:"}]


def test_generates_seeded_text_and_serves_the_model_by_its_registry_name(llamacpp):
    llamacpp.check()
    assert llamacpp.client.model == "smollm2-135m"
    prompts = [REVIEW, "The capital of France is"]
    greedy = llamacpp.generate(prompts, SamplingParams(max_new_tokens=12, temperature=0.0), [0, 1])
    assert all(isinstance(t, str) and t.strip() for t in greedy)
    assert "Paris" in greedy[1]
    sampled = [llamacpp.generate([REVIEW] * 2, SamplingParams(max_new_tokens=16, temperature=1.0), [7, 8])
               for _ in range(2)]
    assert sampled[0] == sampled[1]  # per-request seeds: the same seeds, the same texts


def test_a_prefilled_answer_is_the_continuation_alone(llamacpp):
    # llama-server's chat API answers a prefilled assistant message with the prefill and its
    # continuation; the backend returns the continuation, as hf does and as the raw
    # /completion endpoint gives it for the same rendered prompt
    prefilled = REVIEW + [{"role": "assistant", "content": "The label is"}]
    greedy = SamplingParams(max_new_tokens=8, temperature=0.0)
    text = llamacpp.generate([prefilled], greedy, [0])[0]
    raw = llamacpp._post("/completion", {"prompt": llamacpp.render(prefilled), "n_predict": 8, "temperature": 0.0})
    assert text == raw["content"] and not text.startswith("The label is")


def test_prompts_tokenize_as_the_hf_backend_does(llamacpp, hf):
    prefilled = REVIEW + [{"role": "assistant", "content": "The label is"}]
    for prompt in [REVIEW, prefilled, "Review: dull and far too long.\nSentiment:"]:
        assert llamacpp.encode_prompt(prompt) == hf.encode_prompt(prompt), prompt
    for label in [" positive", "negative", " a mixed review"]:
        assert llamacpp.encode_continuation(label) == hf.encode_continuation(label)


def test_label_logprobs_match_the_hf_backend(llamacpp, hf):
    prompts = [REVIEW, REVIEW, REVIEW, "Review: dull and far too long.\nSentiment:",
               "Review: dull and far too long.\nSentiment:"]
    labels = [" positive", " negative", " a mixed review", " negative", " positive"]
    ours, theirs = llamacpp.score(prompts, labels), hf.score(prompts, labels)
    # the same Q4_1 weights: llama.cpp computes with 8-bit activations, hf in fp32 after dequantizing.
    # How far the two drift depends on the SIMD kernels llama-server was built with (GGML_NATIVE):
    # up to 0.19 per token measured on an AMD EPYC build, under 0.15 on the build this was written
    # on; a one-position shift (checked below) moves a score by more than 0.5.
    tol = [0.25 * len(hf.encode_continuation(c)) for c in labels]
    assert all(abs(a - b) <= t for a, b, t in zip(ours, theirs, tol)), (ours, theirs)
    assert (ours[0] > ours[1]) == (theirs[0] > theirs[1]) and (ours[3] > ours[4]) == (theirs[3] > theirs[4])
    # a score shifted by one position (the Python server's echo bug) is far outside the tolerance
    ids = hf.encode_prompt(REVIEW) + hf.encode_continuation(" positive")
    chosen, _ = hf.token_logprobs(ids)
    assert abs(chosen[-2] - theirs[0]) > 0.5


def test_labels_sharing_a_context_share_one_call_and_score_as_forced_one_by_one(llamacpp):
    sentiment = "Review: dull and far too long.\nSentiment:"
    prompts = [REVIEW, REVIEW, REVIEW, REVIEW, sentiment, sentiment]
    labels = [" positive", " negative", " a mixed review", " a mixed bag", " negative", " positive"]
    before = llamacpp.calls
    ours = llamacpp.score(prompts, labels)
    calls = llamacpp.calls - before
    rows = [(llamacpp.encode_prompt(p), llamacpp.encode_continuation(c)) for p, c in zip(prompts, labels)]
    one_by_one = [sum(llamacpp.next_token_logprob(p + c[:t], c[t]) for t in range(len(c))) for p, c in rows]
    assert all(abs(a - b) <= 1e-3 * len(c) for a, b, (_, c) in zip(ours, one_by_one, rows)), (ours, one_by_one)
    tokens = sum(len(c) for _, c in rows)
    # a call per distinct context: the two labels of `sentiment` and the shared " a mixed" cost one each
    assert calls <= tokens - 3, (calls, tokens)


def test_generate_and_score_gives_what_the_two_calls_give(llamacpp):
    greedy = SamplingParams(max_new_tokens=6, temperature=0.0)
    # one-token options that are all among the next token's top 20: one scoring call per prompt
    prompts = ["Question: is the sky blue? Answer (Yes or No):", "The capital of France is"]
    options = [[" Yes", " No"], [" Paris", " the"]]
    before = llamacpp.calls
    got = generate_and_score(llamacpp, prompts, greedy, [0, 1], options)
    assert llamacpp.calls - before == 2
    assert [t for t, _ in got] == llamacpp.generate(prompts, greedy, [0, 1])
    for (_, scores), p, o in zip(got, prompts, options):
        assert scores == pytest.approx(llamacpp.score([p] * 2, o), abs=1e-3)
    assert got[1][1][0] > got[1][1][1]  # Paris over the


def test_a_failed_start_raises_and_leaves_no_process(tmp_path, monkeypatch):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(4096))  # the magic, then garbage
    started = []
    real = subprocess.Popen

    def recording_popen(*a, **k):
        p = real(*a, **k)
        started.append(p.pid)
        return p

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    with pytest.raises(LLMError, match="did not start.*exited"):
        LlamaServer(bad, server_binary(), startup_timeout_s=60).start()
    assert started and all(wait_gone(pid) for pid in started)


def test_a_model_that_is_not_a_gguf_is_a_config_error():
    from core.config import ConfigError, from_dict

    with pytest.raises(ConfigError) as e:
        from_dict(LLMConfig, {"backend": "llamacpp", "llamacpp": {"model": "minilm"}})
    assert e.value.key == "llamacpp.model" and "qwen2.5-coder-1.5b" in str(e.value)
    with pytest.raises(ConfigError) as e:
        from_dict(LLMConfig, {"backend": "llamacpp", "llamacpp": {"model": "smollm2-135m", "server": "/nope"}})
    assert e.value.key == "llamacpp.server" and "make install" in str(e.value)
    with pytest.raises(ConfigError) as e:
        from_dict(LLMConfig, {"backend": "llamacpp", "llamacpp": {"parallel": 8, "ctx": 256}})
    assert e.value.key == "llamacpp.ctx"


CHILD = textwrap.dedent("""
    import sys, time
    from core.llm.config import LlamaCppConfig
    from core.llm.llamacpp import LlamaCppBackend
    b = LlamaCppBackend.from_config(LlamaCppConfig(model="smollm2-135m", threads=1, parallel=1, ctx=512))
    print(b.server.pid, flush=True)
    time.sleep(600)
""")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_no_server_outlives_its_process(sig):
    """SIGTERM: our handler stops the server, then the process dies as it would have.
    SIGKILL: nothing runs in the process; the kernel's parent-death signal stops the server."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, env=env)
    try:
        pid = int(child.stdout.readline())
        assert alive(pid)
        child.send_signal(sig)
        assert child.wait(30) == -sig
        assert wait_gone(pid), f"llama-server {pid} still running after its parent got {sig!r}"
    finally:
        if child.poll() is None:
            child.kill()


@pytest.mark.ray
@pytest.mark.xdist_group("ray")
def test_a_pool_runs_one_server_per_actor_and_stops_them(ray_session):
    import ray

    from core.config import from_dict

    cfg = from_dict(LLMConfig, {"backend": "llamacpp",
                                "llamacpp": {"model": "smollm2-135m", "threads": 1, "parallel": 2, "ctx": 1024},
                                "pool": {"actors": 2, "batch_size": 2, "num_cpus": 0.5}})
    pool = build_backend(cfg)
    try:
        pool.check()
        texts = pool.generate(["One, two, three,"] * 4, SamplingParams(max_new_tokens=6, temperature=0.0),
                              [0, 1, 2, 3])
        assert len(texts) == 4 and len(set(texts)) == 1 and texts[0].strip()
        pids = ray.get([a.__ray_call__.remote(lambda self: self.backend.server.pid) for a in pool.actors])
        assert len(set(pids)) == 2 and all(alive(p) for p in pids)
        assert sum(pool.served()) == 4
        # a prompt over a slot's context (1024 / 2 tokens) comes back through Ray as the server's
        # rejection of that request, which ie.runner isolates, and the pool goes on answering
        with pytest.raises(LLMError) as err:
            pool.generate(["One, two, three,", "word " * 2000], SamplingParams(max_new_tokens=6, temperature=0.0),
                          [0, 1])
        assert rejected_request(err.value) and "context" in str(err.value)
        assert pool.generate(["One, two, three,"], SamplingParams(max_new_tokens=6, temperature=0.0), [0]) == texts[:1]
    finally:
        pool.shutdown()
    assert all(wait_gone(p) for p in pids)

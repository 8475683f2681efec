"""The openai backend against a real OpenAI-compatible server on 127.0.0.1 (core.llm.server) backed
by the hf backend on the random tiny-llama: the same seeded texts and scores as in-process,
retries, timeouts, and the errors a job sees before it starts."""

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from core.config import ConfigError
from core.llm import (
    HFBackend,
    HTTPStatusError,
    LLMConfig,
    LLMError,
    OpenAIBackend,
    OpenAIConfig,
    SamplingParams,
    ScoreUnsupportedError,
    UnreachableError,
    check_backend,
    local_backend,
)
from core.llm.openai import strip_prefill
from core.llm.server import OpenAIServer
from core.models import ModelConfig
from core.seeding import derive_seed

# different lengths; the last one ends with a prefilled assistant message, which is continued
CHATS = [[{"role": "user", "content": f"Write review number {i}." + " Make it short." * i}] for i in range(3)]
CHATS.append([{"role": "user", "content": "Write a review."}, {"role": "assistant", "content": "Text:"}])
SEEDS = [derive_seed("http", i) for i in range(len(CHATS))]
SAMPLING = SamplingParams(max_new_tokens=6, temperature=1.0, top_k=20)


@pytest.fixture(scope="module")
def hf():
    return HFBackend.from_config(ModelConfig(name="tiny-llama"), batch_size=3, seed=0)


@pytest.fixture(scope="module")
def server(hf):
    with OpenAIServer(hf, "tiny-llama") as s:
        yield s


def _client(url: str, **kw) -> OpenAIBackend:
    kw = {"max_retries": 0, "backoff_s": 0.01, "timeout_s": 30.0, **kw}
    return OpenAIBackend(url, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FlakyServer(OpenAIServer):
    """The real server, answering its first requests with the given error statuses (a restarting
    or overloaded server), or after a delay; it counts what it was sent."""

    def __init__(self, *args, fail: tuple[int, ...] = (), delay_s: tuple[float, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fail, self.delay_s = list(fail), list(delay_s)
        self.seen: list[str] = []
        self._count_lock = threading.Lock()

    def respond(self, method, path, body, headers):
        with self._count_lock:
            n = len(self.seen)
            self.seen.append(path)
        if n < len(self.delay_s):
            time.sleep(self.delay_s[n])
        if n < len(self.fail):
            headers = {"Retry-After": "0"} if self.fail[n] == 429 else {}
            return self.fail[n], {"error": {"message": "try later", "type": "server_error"}}, headers
        return super().respond(method, path, body, headers)


def test_seeded_generation_over_http_is_the_in_process_generation(hf, server):
    client = _client(server.base_url, concurrency=3)
    client.check()
    assert client.model == "tiny-llama"  # the server's only model, when none is configured
    want = hf.generate(CHATS, SAMPLING, SEEDS)
    assert client.generate(CHATS, SAMPLING, SEEDS) == want
    assert len(set(want)) == len(want) and all(t.strip() for t in want)
    # plain-string prompts go through /completions, greedy decoding as well
    texts = ["Once upon a time", "The film was"]
    for p in (SAMPLING, SamplingParams(max_new_tokens=5, temperature=0.0)):
        assert client.generate(texts, p, SEEDS[:2]) == hf.generate(texts, p, SEEDS[:2])
    assert client.generate(CHATS, SAMPLING, [s + 1 for s in SEEDS]) != want


def test_score_over_http_is_the_in_process_score(hf, server):
    client = _client(server.base_url)
    prompts = [CHATS[0], CHATS[3], CHATS[3], "The film was"]
    conts = [" fresh", " rotten", " fresh and bright", " dull"]
    got = client.score(prompts, conts)
    assert got == pytest.approx(hf.score(prompts, conts), abs=1e-4)
    assert all(v < 0 for v in got)
    with pytest.raises(ValueError, match="no tokens"):
        client.score(prompts[:1], [""])


def test_the_server_speaks_the_openai_schema(hf, server):
    def call(path, body=None, raw=None):
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(server.base_url.removesuffix("/v1") + path, data=data,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    status, models = call("/v1/models")
    assert status == 200 and [m["id"] for m in models["data"]] == ["tiny-llama"]
    status, chat = call("/v1/chat/completions", {"model": "tiny-llama", "messages": CHATS[0], "max_tokens": 4,
                                                 "seed": 7, "top_k": 20})
    assert status == 200 and chat["object"] == "chat.completion"
    choice = chat["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == hf.generate(CHATS[:1], SamplingParams(4, top_k=20), [7])[0]
    assert choice["finish_reason"] in ("stop", "length") and chat["usage"]["completion_tokens"] <= 4
    # echo with log-probs: the prompt's tokens, the first without a log-prob (nothing precedes it)
    ids = hf.encode_prompt("The film was")
    status, comp = call("/v1/completions", {"prompt": ids, "echo": True, "logprobs": 2, "max_tokens": 1,
                                            "temperature": 0})
    lp = comp["choices"][0]["logprobs"]
    assert status == 200 and lp["token_logprobs"][0] is None and len(lp["tokens"]) == len(ids) + 1
    assert lp["token_logprobs"][1:len(ids)] == pytest.approx(hf.token_logprobs(ids)[0], abs=1e-5)
    assert all(len(t) == 2 for t in lp["top_logprobs"][1:])
    status, tok = call("/tokenize", {"messages": CHATS[3], "add_generation_prompt": False,
                                     "continue_final_message": True})
    assert status == 200 and tok["tokens"] == hf.encode_prompt(CHATS[3]) and tok["count"] == len(tok["tokens"])
    # what it does not do, it refuses with a 4xx and says why
    assert call("/v1/chat/completions", {"messages": CHATS[0], "n": 2})[0] == 400
    assert call("/v1/chat/completions", raw=b"{not json")[0] == 400
    status, err = call("/v1/completions", {"prompt": "x " * 200, "max_tokens": 4})
    assert status == 400 and "positions" in err["error"]["message"]
    assert call("/v1/embeddings", {"input": "x"})[0] == 404


class PrefillEchoingServer(OpenAIServer):
    """The real server, answering a prefilled assistant message as llama-server does: with the
    prefill followed by its continuation (vLLM and core.llm.server send the continuation alone)."""

    def respond(self, method, path, body, headers):
        status, answer, extra = super().respond(method, path, body, headers)
        messages = (body or {}).get("messages") or []
        if status == 200 and path.rstrip("/") == "/v1/chat/completions" and messages[-1]["role"] == "assistant":
            answer["choices"][0]["message"]["content"] = messages[-1]["content"] + answer["choices"][0]["message"]["content"]
        return status, answer, extra


def test_a_prefilled_answer_is_its_continuation_whether_or_not_the_server_echoes_the_prefill(hf, server):
    want = hf.generate(CHATS, SAMPLING, SEEDS)
    with PrefillEchoingServer(hf, "tiny-llama") as echoing:
        for url in (server.base_url, echoing.base_url):
            assert _client(url).generate(CHATS, SAMPLING, SEEDS) == want, url
    assert strip_prefill("Text: a film", "Text:") == " a film"
    assert strip_prefill(" a film", "Text:") == " a film"  # the continuation alone is left as it is
    assert strip_prefill("Text: a film", None) == "Text: a film"  # no prefill: a whole answer


def test_retries_back_off_through_5xx_and_429(hf):
    with FlakyServer(hf, "tiny-llama", fail=(503, 429, 502)) as flaky:
        client = _client(flaky.base_url, model="tiny-llama", max_retries=3, backoff_s=0.01)
        assert client.generate(CHATS[:1], SAMPLING, SEEDS[:1]) == hf.generate(CHATS[:1], SAMPLING, SEEDS[:1])
        assert len(flaky.seen) == 4
    with FlakyServer(hf, "tiny-llama", fail=(503, 503, 503)) as flaky:
        client = _client(flaky.base_url, model="tiny-llama", max_retries=2, backoff_s=0.01)
        with pytest.raises(LLMError, match=r"after 3 attempt\(s\).*HTTP 503") as err:
            client.generate(CHATS[:1], SAMPLING, SEEDS[:1])
        assert flaky.base_url in str(err.value) and len(flaky.seen) == 3
    # a 4xx is the request's fault: retrying cannot fix it
    with FlakyServer(hf, "tiny-llama") as counting:
        client = _client(counting.base_url, model="tiny-llama", max_retries=3, backoff_s=0.01)
        with pytest.raises(HTTPStatusError, match="positions") as err:
            client.generate(["x " * 200], SAMPLING, [0])
        assert err.value.status == 400 and len(counting.seen) == 1


def test_backoff_doubles_up_to_the_cap():
    client = _client("http://127.0.0.1:1/v1", backoff_s=0.5, max_backoff_s=3.0)
    assert [client._backoff(a, None) for a in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert client._backoff(0, "2") == 2.0 and client._backoff(0, "Wed, 21 Oct 2015 07:28:00 GMT") == 0.5


def test_a_slow_answer_times_out_and_is_retried(hf):
    with FlakyServer(hf, "tiny-llama", delay_s=(1.5,)) as slow:
        client = _client(slow.base_url, model="tiny-llama", timeout_s=0.3, max_retries=0)
        with pytest.raises(UnreachableError, match="timed out after 0.3 s"):  # not the 1.5 s answer
            client.generate(CHATS[:1], SAMPLING, SEEDS[:1])
    with FlakyServer(hf, "tiny-llama", delay_s=(1.5,)) as slow:
        client = _client(slow.base_url, model="tiny-llama", timeout_s=0.3, max_retries=1, backoff_s=0.01)
        assert client.generate(CHATS[:1], SAMPLING, SEEDS[:1]) == hf.generate(CHATS[:1], SAMPLING, SEEDS[:1])
        assert len(slow.seen) == 2


def test_an_unreachable_backend_is_a_config_error_naming_the_key_and_url(monkeypatch):
    url = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(ConfigError, match="cannot reach the openai backend at " + url) as err:
        _client(url, max_retries=1).check()
    assert err.value.key == "llm.openai.base_url"
    # the URL from the environment; the key as the job nests the config
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    cfg = LLMConfig(backend="openai", openai=OpenAIConfig(model="tiny-llama", max_retries=0))
    with pytest.raises(ConfigError) as err:
        check_backend(cfg, key="teacher")
    assert err.value.key == "teacher.openai.base_url" and url in str(err.value)
    with pytest.raises(UnreachableError, match=url):
        local_backend(cfg).generate(["hi"], SAMPLING, [0])


def test_a_wrong_model_or_key_is_a_config_error(hf, server, monkeypatch):
    with pytest.raises(ConfigError, match="allowed: tiny-llama") as err:
        _client(server.base_url, model="gpt-9").check()
    assert err.value.key == "llm.openai.model"

    with OpenAIServer(hf, "tiny-llama", api_key="sesame") as keyed:
        with pytest.raises(ConfigError) as err:
            _client(keyed.base_url, api_key="wrong").check()
        assert err.value.key == "llm.openai.api_key"
        monkeypatch.setenv("OPENAI_API_KEY", "sesame")
        good = OpenAIBackend.from_config(OpenAIConfig(base_url=keyed.base_url))
        good.check()
        assert good.generate(CHATS[:1], SAMPLING, SEEDS[:1]) == hf.generate(CHATS[:1], SAMPLING, SEEDS[:1])


def test_a_server_in_front_of_a_text_only_backend_generates_but_cannot_score(hf, server):
    # a proxy: server -> openai client -> server -> hf, two real HTTP hops
    upstream = _client(server.base_url, model="tiny-llama")
    with OpenAIServer(upstream, "proxy") as proxy:
        client = _client(proxy.base_url)
        assert client.generate(CHATS, SAMPLING, SEEDS) == hf.generate(CHATS, SAMPLING, SEEDS)
        with pytest.raises(ScoreUnsupportedError, match=r"the openai backend at .* cannot score") as err:
            client.score(CHATS[:1], [" fresh"])
        assert isinstance(err.value, NotImplementedError)

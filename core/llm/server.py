"""A small OpenAI-compatible HTTP server on 127.0.0.1 in front of any Backend: /v1/models,
/v1/chat/completions and /v1/completions, plus vLLM's /tokenize and prompt log-probs (echo)
when the backend works on token ids (HFBackend does), which is what OpenAIBackend.score needs.

A request's `seed` seeds its sampling, so a seeded request gets the text the backend writes
in-process for the same prompt and seed.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from core.llm.base import (
    Backend,
    Prompt,
    SamplingParams,
    TokenBackend,
    continues_last_message,
)
from core.seeding import derive_seed

log = logging.getLogger(__name__)

Reply = tuple[int, dict[str, Any], dict[str, str]]


class BadRequest(ValueError):
    """The request asks for something malformed or something this server does not do (HTTP 400)."""


def error_body(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _number(body: dict[str, Any], key: str, default: float, kind: type = float) -> Any:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise BadRequest(f"'{key}' must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    return kind(value)


def _messages(body: dict[str, Any]) -> list[dict[str, str]]:
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise BadRequest("'messages' must be a non-empty list")
    chat = []
    for m in msgs:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise BadRequest(f"every message needs a string 'role' and a string 'content', got {str(m)[:100]}")
        chat.append({"role": m["role"], "content": m["content"]})
    # the backend continues a chat exactly when it ends with an assistant message; refuse a request
    # that asks for the other behaviour rather than silently doing something else
    if "continue_final_message" in body and bool(body["continue_final_message"]) != continues_last_message(chat):
        raise BadRequest("this server continues a chat exactly when its last message is the assistant's; "
                         f"continue_final_message={body['continue_final_message']!r} asks otherwise")
    return chat


def _token_lists(prompt: Any) -> list[str | list[int]]:
    """OpenAI's four prompt shapes (text, texts, token ids, lists of token ids) as a list of prompts."""
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return list(prompt)
        if all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            return [list(prompt)]
        if all(isinstance(p, list) and p and all(isinstance(t, int) for t in p) for p in prompt):
            return [list(p) for p in prompt]
    raise BadRequest("'prompt' must be a string, a list of strings, a list of token ids or a list of those")


class OpenAIServer:
    """`with OpenAIServer(backend, "name") as server:` serves on server.base_url until the block ends.

    Calls into the backend take turns (one lock), since a model is not safe to share between
    request threads. respond() is the whole request-to-answer mapping.
    """

    def __init__(self, backend: Backend, model: str, host: str = "127.0.0.1", port: int = 0,
                 api_key: str | None = None):
        self.backend = backend
        self.model = model
        self.api_key = api_key  # when set, every request must carry "Authorization: Bearer <api_key>"
        self._lock = threading.Lock()
        self._requests = itertools.count()
        self._ids = itertools.count()
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        # stopping must not wait for a request thread that is still busy (or deliberately slow)
        self._httpd.block_on_close = False
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> Self:
        # a short poll: stop() waits up to one poll interval
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="openai-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- requests --------------------------------------------------------------------------

    def respond(self, method: str, path: str, body: dict[str, Any] | None, headers: Mapping[str, str]) -> Reply:
        """(status, JSON body, extra headers) for one request."""
        if self.api_key is not None and headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, error_body("a missing or wrong API key", "authentication_error"), {}
        routes = {
            ("GET", "/v1/models"): self._models,
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/v1/completions"): self._completions,
            ("POST", "/tokenize"): self._tokenize,
            ("POST", "/v1/tokenize"): self._tokenize,
        }
        route = routes.get((method, path.rstrip("/")))
        if route is None:
            return 404, error_body(f"no route {method} {path}", "not_found_error"), {}
        try:
            return 200, route(body or {}), {}
        except (BadRequest, ValueError) as err:
            return 400, error_body(str(err)), {}
        except Exception as err:  # a bug or a backend failure: the client sees a 500 and may retry
            log.exception("request %s %s failed", method, path)
            return 500, error_body(f"{type(err).__name__}: {err}", "server_error"), {}

    @property
    def token_level(self) -> bool:
        return isinstance(self.backend, TokenBackend)

    def _need_tokens(self, what: str) -> TokenBackend:
        if not self.token_level:
            raise BadRequest(f"{what} needs token ids, and this server's backend "
                             f"({getattr(self.backend, 'name', type(self.backend).__name__)}) works on text only")
        return self.backend  # type: ignore[return-value]

    def _sampling(self, body: dict[str, Any], default_max_tokens: int) -> tuple[SamplingParams, int]:
        if body.get("n") not in (None, 1):
            raise BadRequest(f"only n=1 is supported, got n={body['n']!r}")
        if body.get("stream"):
            raise BadRequest("streaming is not supported")
        if body.get("stop"):
            raise BadRequest("stop sequences are not supported")
        max_tokens = _number(body, "max_completion_tokens", _number(body, "max_tokens", default_max_tokens, int), int)
        params = SamplingParams(max_new_tokens=max_tokens, temperature=_number(body, "temperature", 1.0),
                                top_k=max(0, _number(body, "top_k", 0, int)),  # vLLM's "off" is -1
                                top_p=_number(body, "top_p", 1.0))
        if params.max_new_tokens < 0 or params.temperature < 0 or not 0 < params.top_p <= 1:
            raise BadRequest(f"out of range: max_tokens >= 0, temperature >= 0, 0 < top_p <= 1; got {params}")
        seed = body.get("seed")
        if seed is None:
            # no seed asked for: a fresh one per request, still a function of the server's history
            seed = derive_seed("openai-server", self.model, next(self._requests))
        elif isinstance(seed, bool) or not isinstance(seed, int):
            raise BadRequest(f"'seed' must be an integer, got {seed!r}")
        return params, seed

    def _envelope(self, kind: str, choices: list[dict[str, Any]], usage: dict[str, int] | None) -> dict[str, Any]:
        out = {"id": f"{'chatcmpl' if kind == 'chat.completion' else 'cmpl'}-{next(self._ids)}",
               "object": kind, "created": int(time.time()), "model": self.model, "choices": choices}
        if usage is not None:
            out["usage"] = usage
        return out

    @staticmethod
    def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
        return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens}

    def _generate(self, prompt: Prompt | list[int], params: SamplingParams,
                  seed: int) -> tuple[list[int] | None, list[int] | None, str]:
        """(prompt ids, new ids, new text); the ids are None when the backend works on text only."""
        if not self.token_level:
            if params.max_new_tokens == 0:
                return None, None, ""
            with self._lock:
                return None, None, self.backend.generate([prompt], params, [seed])[0]
        be: TokenBackend = self.backend  # type: ignore[assignment]
        with self._lock:
            ids = list(prompt) if isinstance(prompt, list) and (not prompt or isinstance(prompt[0], int)) \
                else be.encode_prompt(prompt)
            limit = self._max_len()
            if limit is not None and len(ids) + params.max_new_tokens > limit:
                raise BadRequest(f"{len(ids)} prompt tokens + max_tokens {params.max_new_tokens} exceed the "
                                 f"model's {limit} positions")
            new = be.generate_ids([ids], params, [seed])[0] if params.max_new_tokens > 0 else []
            return ids, new, be.decode(new)

    def _models(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "tailor"}]}

    def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
        chat = _messages(body)
        if body.get("logprobs"):
            raise BadRequest("log-probs of chat replies are not supported (use /v1/completions with echo)")
        params, seed = self._sampling(body, SamplingParams().max_new_tokens)
        ids, new, text = self._generate(chat, params, seed)
        finish = None if new is None else ("length" if len(new) >= params.max_new_tokens else "stop")
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                  "finish_reason": finish}
        return self._envelope("chat.completion", [choice], None if new is None else self._usage(len(ids), len(new)))

    def _completions(self, body: dict[str, Any]) -> dict[str, Any]:
        prompts = _token_lists(body.get("prompt"))
        echo, top = bool(body.get("echo")), body.get("logprobs")
        if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 0):
            raise BadRequest(f"'logprobs' must be an integer >= 0, got {top!r}")
        if top is not None or any(not isinstance(p, str) for p in prompts):
            self._need_tokens("token-id prompts and log-probs")
        params, seed = self._sampling(body, 16)  # OpenAI's default for completions
        choices, used_prompt, used_new = [], 0, 0
        for i, prompt in enumerate(prompts):
            ids, new, text = self._generate(prompt, params, seed)
            if echo:
                text = (prompt if isinstance(prompt, str) else self.backend.decode(ids)) + text
            finish = None if new is None else ("length" if len(new) >= params.max_new_tokens else "stop")
            choice = {"index": i, "text": text, "logprobs": None, "finish_reason": finish}
            if top is not None:
                choice["logprobs"] = self._logprobs(ids, new, top, echo)
            if new is not None:
                used_prompt, used_new = used_prompt + len(ids), used_new + len(new)
            choices.append(choice)
        usage = self._usage(used_prompt, used_new) if self.token_level else None
        return self._envelope("text_completion", choices, usage)

    def _logprobs(self, ids: list[int], new: list[int], top: int, echo: bool) -> dict[str, Any]:
        """OpenAI's legacy logprobs object over the new tokens, or over prompt + new tokens with echo
        (the first prompt token has no log-prob: nothing precedes it)."""
        be: TokenBackend = self.backend  # type: ignore[assignment]
        full = ids + new
        with self._lock:
            chosen, alts = be.token_logprobs(full, top)
            pieces = [be.decode([t]) for t in full]
            alt_text = [{be.decode([t]): lp for t, lp in a.items()} for a in alts] if top > 0 else [None] * len(chosen)
        token_lp: list[float | None] = [None] + chosen
        tops: list[dict[str, float] | None] = [None] + alt_text
        start = 0 if echo else len(ids)
        offsets = list(itertools.accumulate((len(p) for p in pieces), initial=0))[:-1]
        return {"tokens": pieces[start:], "token_logprobs": token_lp[start:], "top_logprobs": tops[start:],
                "text_offset": offsets[start:]}

    def _tokenize(self, body: dict[str, Any]) -> dict[str, Any]:
        be = self._need_tokens("/tokenize")
        if "messages" in body:
            ids = be.encode_prompt(_messages(body))
        elif isinstance(body.get("prompt"), str):
            special = body.get("add_special_tokens", True)
            ids = be.encode_prompt(body["prompt"]) if special else be.encode_continuation(body["prompt"])
        else:
            raise BadRequest("/tokenize needs 'messages' or a string 'prompt'")
        return {"count": len(ids), "max_model_len": self._max_len(), "tokens": ids}

    def _max_len(self) -> int | None:
        return getattr(getattr(getattr(self.backend, "model", None), "config", None), "max_position_embeddings", None)


def _handler_for(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

        def _serve(self, method: str) -> None:
            body = None
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                try:
                    body = json.loads(self.rfile.read(length))
                except json.JSONDecodeError as err:
                    self._send(400, error_body(f"the body is not JSON: {err}"), {})
                    return
                if not isinstance(body, dict):
                    self._send(400, error_body("the body must be a JSON object"), {})
                    return
            try:
                self._send(*server.respond(method, self.path.split("?", 1)[0], body, self.headers))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout): nobody is left to answer

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Sequence[Any]) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler

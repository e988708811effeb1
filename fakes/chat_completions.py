"""Fake OpenAI-compatible chat-completions server standing in for Groq, DashScope and OpenAI, for the real SDKs.

Paths served (POST .../chat/completions and GET .../models under each prefix):
  groq       /openai/v1           (groq.AsyncGroq(base_url=server.groq_base_url))
  openai     /v1                  (openai.AsyncOpenAI(base_url=server.openai_base_url))
  dashscope  /compatible-mode/v1  (openai.AsyncOpenAI(base_url=server.dashscope_base_url))
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from fakes.loopback import LoopbackServer

PREFIXES = {"groq": "/openai/v1", "openai": "/v1", "dashscope": "/compatible-mode/v1"}
MALFORMED_BODY = b'{"id": "x", "choices": ['
_MODELS = {
    "groq": ("llama-3.3-70b-versatile", "llama-3.1-8b-instant"),
    "openai": ("gpt-4o-mini", "gpt-4o"),
    "dashscope": ("qwen-plus", "qwen-turbo"),
}
_PROVIDER_OF = {prefix: provider for provider, prefix in PREFIXES.items()}
_OWNERS = {"groq": "Meta", "openai": "openai", "dashscope": "system"}
_ERRORS = {  # status -> (type, code) as the providers send them
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_denied", "permission_denied"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("tokens", "rate_limit_exceeded"),
    500: ("server_error", "internal_server_error"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
}

Json = dict[str, Any]


@dataclass
class Reply:
    """One scripted answer: a text (status 200), an HTTP error, a delay or a malformed body."""

    text: str | None = None
    status: int = 200
    retry_after: float | None = None
    delay: float = 0.0
    malformed: bool = False


@dataclass
class Request:
    """One request as received; a models listing has model "", no messages and an empty body."""

    provider: str
    model: str
    messages: list[Json]
    body: Json
    authorization: str
    received_at: float
    path: str = ""


def _tokens(text: str) -> int:
    """A rough token count (words), enough for a plausible usage block."""
    return len(text.split())


def _json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response encoded with orjson."""
    return web.Response(body=orjson.dumps(body), status=status, headers=headers, content_type="application/json")


def _error_body(status: int) -> Json:
    """An OpenAI-style error body for an HTTP status."""
    kind, code = _ERRORS.get(status, ("api_error", f"http_{status}"))
    return {"error": {"message": f"fake provider error (HTTP {status})", "type": kind, "code": code}}


class FakeChatServer(LoopbackServer):
    """Scripted OpenAI-compatible chat-completions endpoints on 127.0.0.1 at a free port; records every request."""

    cancel_abandoned_handlers = True  # a client that gives up (timeout) cancels its delayed answer

    def __init__(self, *, default: Reply | None = None, latency: float = 0.0) -> None:
        super().__init__()
        self.default = default or Reply(text="ok")
        self.latency = latency
        self.requests: list[Request] = []
        self._scripts: dict[str, deque[Reply]] = {name: deque() for name in PREFIXES}
        self._responders: dict[str, Callable[[Json], Reply]] = {}

    @property
    def groq_base_url(self) -> str:
        """Base URL for groq.AsyncGroq (the SDK appends /openai/v1)."""
        return self.url

    @property
    def openai_base_url(self) -> str:
        """Base URL for openai.AsyncOpenAI as OpenAI."""
        return self.url + PREFIXES["openai"]

    @property
    def dashscope_base_url(self) -> str:
        """Base URL for openai.AsyncOpenAI as DashScope (compatible mode)."""
        return self.url + PREFIXES["dashscope"]

    def build_app(self) -> web.Application:
        app = web.Application()
        for prefix in PREFIXES.values():
            app.router.add_post(f"{prefix}/chat/completions", self._handle_completion)
            app.router.add_get(f"{prefix}/models", self._handle_models)
        return app

    def script(self, provider: str, *replies: Reply) -> None:
        """Queue answers for a provider (groq | openai | dashscope), first in first out."""
        self._scripts[self._known(provider)].extend(replies)

    def answer_with(self, provider: str, responder: Callable[[Json], Reply]) -> None:
        """Compute the provider's answers from the parsed request body once its queue is empty."""
        self._responders[self._known(provider)] = responder

    def requests_to(self, provider: str) -> list[Request]:
        """The chat-completion requests a provider received, in order."""
        return [r for r in self.requests if r.provider == provider and r.path.endswith("/chat/completions")]

    @staticmethod
    def _known(provider: str) -> str:
        """The provider name, checked."""
        if provider not in PREFIXES:
            raise ValueError(f"unknown provider {provider!r}; expected one of {', '.join(PREFIXES)}")
        return provider

    def _next_reply(self, provider: str, body: Json) -> Reply:
        """The queued reply, else the responder's, else the default."""
        queue = self._scripts[provider]
        if queue:
            return queue.popleft()
        responder = self._responders.get(provider)
        return responder(body) if responder else self.default

    def _record(self, request: web.Request, body: Json) -> Request:
        """Add a request to the log."""
        messages = body.get("messages")
        entry = Request(
            provider=_PROVIDER_OF[request.path.removesuffix("/chat/completions").removesuffix("/models")],
            model=str(body.get("model", "")),
            messages=messages if isinstance(messages, list) else [],
            body=body,
            authorization=request.headers.get("Authorization", ""),
            received_at=time.monotonic(),
            path=request.path,
        )
        self.requests.append(entry)
        return entry

    async def _handle_completion(self, request: web.Request) -> web.Response:
        """POST .../chat/completions: record, wait, then answer as scripted; close() can cancel the wait."""
        with self.answering():
            return await self._complete(request)

    async def _complete(self, request: web.Request) -> web.Response:
        """The answer to one chat-completion request."""
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        entry = self._record(request, body if isinstance(body, dict) else {})
        number = len(self.requests)  # this request's ordinal, used in its ids
        if not isinstance(body, dict):
            return _json_response(_error_body(400), status=400)
        reply = self._next_reply(entry.provider, body)
        wait = self.latency + reply.delay
        if wait > 0:
            await asyncio.sleep(wait)  # cancelled (quietly, by aiohttp) if the client disconnects
        if reply.malformed:
            return web.Response(body=MALFORMED_BODY, status=reply.status, content_type="application/json")
        headers = {"x-request-id": f"req_{number}"}
        if reply.retry_after is not None:
            headers["Retry-After"] = f"{reply.retry_after:g}"
        if reply.status != 200:
            return _json_response(_error_body(reply.status), status=reply.status, headers=headers)
        return _json_response(_completion(entry, number, reply.text), headers=headers)

    async def _handle_models(self, request: web.Request) -> web.Response:
        """GET .../models: a short list of the provider's models."""
        provider = self._record(request, {}).provider
        if self.latency:
            await asyncio.sleep(self.latency)
        created = int(time.time())
        models = [
            {"id": name, "object": "model", "created": created, "owned_by": _OWNERS[provider]}
            for name in _MODELS[provider]
        ]
        return _json_response({"object": "list", "data": models})


def _completion(entry: Request, number: int, text: str | None) -> Json:
    """A chat.completion body that both SDKs parse (groq's with its x_groq block)."""
    prompt = sum(_tokens(str(m.get("content") or "")) for m in entry.messages if isinstance(m, dict))
    completion = _tokens(text or "")
    answer: Json = {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": entry.model,
        "system_fingerprint": "fp_fake",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}
        ],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }
    if entry.provider == "groq":
        answer["x_groq"] = {"id": f"req_{number}"}
    return answer

"""Tests of the fake chat-completions server itself, driven by the real groq and openai SDK clients over sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any, cast

import groq
import openai
import pytest

from fakes.chat_completions import FakeChatServer, Reply

PROVIDERS = ("groq", "openai", "dashscope")
KEYS = {"groq": "gsk_test_groq_key", "openai": "sk-test-openai-key", "dashscope": "sk-test-dashscope-key"}
MODELS = {"groq": "llama-3.3-70b-versatile", "openai": "gpt-4o-mini", "dashscope": "qwen-plus"}
PATHS = {
    "groq": "/openai/v1/chat/completions",
    "openai": "/v1/chat/completions",
    "dashscope": "/compatible-mode/v1/chat/completions",
}
MESSAGES = [
    {"role": "system", "content": "You explain order flow."},
    {"role": "user", "content": "BTCUSDT buy volume 1234.5 in 60s, delta +812.25. Why?"},
]

Client = groq.AsyncGroq | openai.AsyncOpenAI
MakeClient = Callable[..., tuple[ModuleType, Client]]


@pytest.fixture
async def server() -> AsyncIterator[FakeChatServer]:
    """A started fake chat server, closed after the test."""
    async with FakeChatServer() as fake:
        yield fake


@pytest.fixture
async def make_client(server: FakeChatServer) -> AsyncIterator[MakeClient]:
    """Builds real SDK clients (module, client) for a provider of the fake; all are closed after the test."""
    clients: list[Client] = []

    def build(provider: str, *, timeout: float = 2.0, max_retries: int = 0) -> tuple[ModuleType, Client]:
        """The SDK module and a client for the provider, pointed at the fake."""
        options: dict[str, Any] = {"api_key": KEYS[provider], "timeout": timeout, "max_retries": max_retries}
        if provider == "groq":
            sdk, client = groq, groq.AsyncGroq(base_url=server.groq_base_url, **options)
        else:
            base_url = server.openai_base_url if provider == "openai" else server.dashscope_base_url
            sdk, client = openai, openai.AsyncOpenAI(base_url=base_url, **options)
        clients.append(client)
        return sdk, client

    yield build
    for client in clients:
        await client.close()


async def ask(client: Client, provider: str, **options: Any) -> Any:
    """One chat completion with the provider's model and the standard messages."""
    return await client.chat.completions.create(model=MODELS[provider], messages=MESSAGES, **options)


def error_of(exc: groq.APIStatusError | openai.APIStatusError) -> dict[str, Any]:
    """The error object of a status error: groq keeps the whole body, openai unwraps its "error" member."""
    body = cast(dict[str, Any], exc.body)
    return body["error"] if isinstance(exc, groq.APIStatusError) else body


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_success_returns_the_scripted_text_and_records_the_request(
    server: FakeChatServer, make_client: MakeClient, provider: str
) -> None:
    """Each path answers with its scripted text and logs model, messages and the bearer key."""
    _, client = make_client(provider)
    server.script(provider, Reply(text="Buyers lifted the offer."))
    before = time.monotonic()
    response = await ask(client, provider)
    assert response.choices[0].message.content == "Buyers lifted the offer."
    assert response.choices[0].finish_reason == "stop"
    assert response.model == MODELS[provider]
    assert response.usage is not None and response.usage.total_tokens > 0
    [request] = server.requests
    assert (request.provider, request.path, request.model) == (provider, PATHS[provider], MODELS[provider])
    assert request.messages == MESSAGES
    assert request.body["messages"] == MESSAGES and request.body["model"] == MODELS[provider]
    assert request.authorization == f"Bearer {KEYS[provider]}"
    assert before <= request.received_at <= time.monotonic()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_models_listing_answers_and_is_recorded(
    server: FakeChatServer, make_client: MakeClient, provider: str
) -> None:
    """GET .../models gives a small list (for doctor-style checks) and is logged with the key."""
    _, client = make_client(provider)
    listing = await client.models.list()
    assert MODELS[provider] in [model.id for model in listing.data]
    [request] = server.requests
    assert request.provider == provider and request.path.endswith("/models")
    assert (request.model, request.messages, request.body) == ("", [], {})
    assert request.authorization == f"Bearer {KEYS[provider]}"
    assert server.requests_to(provider) == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_status_500_raises_internal_server_error(
    server: FakeChatServer, make_client: MakeClient, provider: str
) -> None:
    """A scripted 500 raises the SDK's InternalServerError with an OpenAI-style error body."""
    sdk, client = make_client(provider)
    server.script(provider, Reply(status=500))
    with pytest.raises(sdk.InternalServerError) as caught:
        await ask(client, provider)
    assert caught.value.status_code == 500
    assert error_of(caught.value)["type"] == "server_error"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_status_429_raises_rate_limit_error_with_retry_after(
    server: FakeChatServer, make_client: MakeClient, provider: str
) -> None:
    """A scripted 429 raises RateLimitError and its Retry-After header reaches the caller."""
    sdk, client = make_client(provider)
    server.script(provider, Reply(status=429, retry_after=2.5))
    with pytest.raises(sdk.RateLimitError) as caught:
        await ask(client, provider)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "2.5"
    assert error_of(caught.value)["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("provider", ["groq", "openai"])
async def test_sdk_retry_waits_for_retry_after(server: FakeChatServer, make_client: MakeClient, provider: str) -> None:
    """With retries on, the SDK honours Retry-After and the next scripted answer succeeds."""
    _, client = make_client(provider, max_retries=1)
    server.script(provider, Reply(status=429, retry_after=0.2), Reply(text="second time lucky"))
    response = await ask(client, provider)
    assert response.choices[0].message.content == "second time lucky"
    first, second = server.requests
    assert second.received_at - first.received_at >= 0.2


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_delay_beyond_the_timeout_raises_api_timeout_error(
    server: FakeChatServer, make_client: MakeClient, provider: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A reply slower than the client's timeout raises APITimeoutError; the server shrugs off the disconnect."""
    sdk, client = make_client(provider, timeout=0.2)
    server.script(provider, Reply(text="too late", delay=2.0))
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG, logger="aiohttp"), pytest.raises(sdk.APITimeoutError):
        await ask(client, provider)
    assert time.monotonic() - started < 1.0
    response = await ask(client, provider)
    assert response.choices[0].message.content == "ok"
    assert [r.levelname for r in caplog.records if r.name.startswith("aiohttp") and r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_malformed_json_raises_json_decode_error(
    server: FakeChatServer, make_client: MakeClient, provider: str
) -> None:
    """A 200 with a broken JSON body surfaces as json.JSONDecodeError (a ValueError), not as an SDK APIError."""
    sdk, client = make_client(provider)
    server.script(provider, Reply(malformed=True))
    with pytest.raises(json.JSONDecodeError) as caught:
        await ask(client, provider)
    assert isinstance(caught.value, ValueError)
    assert not isinstance(caught.value, sdk.APIError)


async def test_answer_with_echoes_numbers_from_the_prompt(server: FakeChatServer, make_client: MakeClient) -> None:
    """A responder computes the reply from the request body; a queued reply still goes first."""
    _, client = make_client("dashscope")

    def echo(body: dict[str, Any]) -> Reply:
        """Repeat the numbers of the last message."""
        numbers = re.findall(r"[-+]?\d+(?:\.\d+)?", body["messages"][-1]["content"])
        return Reply(text=f"{body['model']} saw " + ", ".join(numbers))

    server.answer_with("dashscope", echo)
    server.script("dashscope", Reply(text="queued first"))
    assert (await ask(client, "dashscope")).choices[0].message.content == "queued first"
    answer = (await ask(client, "dashscope")).choices[0].message.content
    assert answer == "qwen-plus saw 1234.5, 60, +812.25"


async def test_queues_are_fifo_per_provider_and_fall_back_to_the_default() -> None:
    """Each provider's queue is consumed in order, independently; then the default answers."""
    async with FakeChatServer(default=Reply(text="fallback")) as fake:
        fake.script("groq", Reply(text="g1"), Reply(text="g2"))
        fake.script("openai", Reply(text="o1"))
        fake.script("groq", Reply(text="g3"))
        options: dict[str, Any] = {"timeout": 2.0, "max_retries": 0}
        async with (
            groq.AsyncGroq(api_key=KEYS["groq"], base_url=fake.groq_base_url, **options) as groq_client,
            openai.AsyncOpenAI(api_key=KEYS["openai"], base_url=fake.openai_base_url, **options) as openai_client,
        ):
            order = [("groq", groq_client), ("openai", openai_client), ("groq", groq_client), ("openai", openai_client)]
            order += [("groq", groq_client), ("groq", groq_client)]
            texts = [(await ask(client, provider)).choices[0].message.content for provider, client in order]
        assert texts == ["g1", "o1", "g2", "fallback", "g3", "fallback"]
        assert [r.provider for r in fake.requests] == [provider for provider, _ in order]
        assert len(fake.requests_to("groq")) == 4


async def test_reply_without_text_gives_null_content(server: FakeChatServer, make_client: MakeClient) -> None:
    """Reply() with no text is a 200 whose message content is null (an empty answer)."""
    _, client = make_client("openai")
    server.script("openai", Reply())
    assert (await ask(client, "openai")).choices[0].message.content is None


async def test_latency_is_added_to_every_answer() -> None:
    """The server-wide latency delays each answer."""
    async with (
        FakeChatServer(latency=0.15) as fake,
        openai.AsyncOpenAI(api_key=KEYS["openai"], base_url=fake.openai_base_url, max_retries=0, timeout=2.0) as client,
    ):
        started = time.monotonic()
        await ask(client, "openai")
        assert time.monotonic() - started >= 0.15


async def test_close_is_fast_with_a_delayed_request_in_flight() -> None:
    """close() cancels a long delay at once; the waiting client sees a connection error."""
    fake = FakeChatServer(default=Reply(text="never", delay=10.0))
    await fake.start()
    async with openai.AsyncOpenAI(api_key=KEYS["openai"], base_url=fake.openai_base_url, max_retries=0) as client:
        pending = asyncio.create_task(ask(client, "openai", timeout=20.0))
        while not fake.requests:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await fake.close()
        assert time.monotonic() - started < 0.5
        with pytest.raises(openai.APIConnectionError):
            await asyncio.wait_for(pending, 2.0)


def test_unknown_provider_is_refused() -> None:
    """Scripting a provider the server does not serve is an error, not a silent no-op."""
    fake = FakeChatServer()
    with pytest.raises(ValueError, match="unknown provider"):
        fake.script("anthropic", Reply(text="x"))
    with pytest.raises(ValueError, match="unknown provider"):
        fake.answer_with("Groq", lambda body: Reply(text="x"))

"""Chat providers tried in order (Groq, DashScope, OpenAI), each through its own SDK, with a circuit breaker.

A call has a timeout and at most one retry: after a timeout or a server error, or after a 429 whose
Retry-After is short. A provider that keeps failing is skipped for a cooldown. Every attempt is recorded
(provider, outcome, seconds) so that logs, and later metrics, can say who answered and why others did not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ai.acceptance import acceptance
from ai.config import AIConfig

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]
Completer = Callable[[str, Messages, Any, str], Awaitable["Completion | None"]]  # (kind, messages, facts, question)


class ChatClient(Protocol):
    """The part of the groq and openai SDK clients that we use."""

    @property
    def chat(self) -> Any: ...


@dataclass
class Attempt:
    provider: str
    outcome: str  # ok | rejected:<reason> | timeout | rate_limited | server_error | error:<type> | circuit_open
    seconds: float


@dataclass
class Completion:
    text: str
    provider: str
    model: str
    seconds: float
    attempts: list[Attempt] = field(default_factory=list)


class CircuitBreaker:
    """Opens after `threshold` failures in a row; while open for `cooldown` seconds the provider is skipped."""

    def __init__(self, threshold: int = 3, cooldown: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None

    def allows(self) -> bool:
        if self.opened_at is None:
            return True
        if self.clock() - self.opened_at >= self.cooldown:
            self.opened_at = None  # half-open: one call may try again
            self.failures = self.threshold - 1
            return True
        return False

    def succeeded(self) -> None:
        self.failures = 0
        self.opened_at = None

    def failed(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = self.clock()


@dataclass
class ChatProvider:
    """One provider: a name, a model and an SDK client (AsyncGroq or AsyncOpenAI)."""

    name: str
    model: str
    client: ChatClient
    sdk: Any  # the SDK module, for its exception classes
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)

    async def ask(self, messages: Messages, timeout: float) -> str:
        response = await self.client.chat.completions.create(
            model=self.model, messages=messages, temperature=0.2, max_tokens=300, timeout=timeout
        )
        text = response.choices[0].message.content if response.choices else None
        if not isinstance(text, str) or not text.strip():
            raise ValueError("empty answer")
        return text.strip()


def providers_from(config: AIConfig) -> list[ChatProvider]:
    """The configured providers in their order (only those with a key: their SDK is imported only then)."""
    providers = []
    for provider in config.providers:
        key = provider.api_key.get_secret_value()
        if provider.name == "groq":
            import groq

            groq_client = groq.AsyncGroq(api_key=key, base_url=provider.base_url, max_retries=0)
            providers.append(ChatProvider("groq", provider.model, groq_client, groq))
        else:
            import openai

            client = openai.AsyncOpenAI(api_key=key, base_url=provider.base_url, max_retries=0)
            providers.append(ChatProvider(provider.name, provider.model, client, openai))
    return providers


class ProviderChain:
    """Asks each provider in turn until one gives an answer that `accept` does not reject."""

    def __init__(
        self,
        providers: list[ChatProvider],
        *,
        timeout: float,
        longest_wait: float = 3.0,
        on_attempts: Callable[[list[Attempt]], None] | None = None,
    ) -> None:
        self.providers = providers
        self.timeout = timeout
        self.longest_wait = longest_wait
        self.on_attempts = on_attempts  # sees every call's attempts, answered or not (metrics)
        self.rejections = 0

    async def answer(self, kind: str, messages: Messages, facts: Any, question: str) -> Completion | None:
        """A Completer: the first answer that is grounded in `facts` and does not repeat the instructions."""
        return await self.complete(messages, acceptance(kind, facts, question, instructions=messages[0]["content"]))

    async def complete(self, messages: Messages, accept: Callable[[str], str | None]) -> Completion | None:
        """The first acceptable answer, or None when every provider failed (the caller's offline text answers).

        `accept(text)` returns None for a good answer, else the reason it is refused (e.g. ungrounded numbers).
        """
        attempts: list[Attempt] = []
        for provider in self.providers:
            if not provider.breaker.allows():
                attempts.append(Attempt(provider.name, "circuit_open", 0.0))
                continue
            text = await self._ask_with_one_retry(provider, messages, attempts)
            if text is None:
                continue
            reason = accept(text)
            if reason is not None:
                self.rejections += 1
                attempts[-1].outcome = f"rejected:{reason}"
                log.warning("%s answer rejected: %s", provider.name, reason)
                continue
            log.info("answered by %s in %.2fs (%s)", provider.name, attempts[-1].seconds, _summary(attempts))
            self._observed(attempts)
            return Completion(text, provider.name, provider.model, attempts[-1].seconds, attempts)
        if attempts:
            log.warning("no provider answered (%s); the offline explainer answers", _summary(attempts))
        self._observed(attempts)
        return None

    def _observed(self, attempts: list[Attempt]) -> None:
        if self.on_attempts is not None and attempts:
            self.on_attempts(attempts)

    async def _ask_with_one_retry(
        self, provider: ChatProvider, messages: Messages, attempts: list[Attempt]
    ) -> str | None:
        for attempt in range(2):
            started = time.monotonic()
            outcome, wait = "ok", None
            try:
                text = await provider.ask(messages, self.timeout)
            except provider.sdk.APITimeoutError:
                outcome = "timeout"
            except provider.sdk.RateLimitError as exc:
                outcome, wait = "rate_limited", _retry_after(exc)
            except provider.sdk.InternalServerError:
                outcome = "server_error"
            except (provider.sdk.APIError, ValueError, TimeoutError) as exc:
                outcome = f"error:{type(exc).__name__}"
            attempts.append(Attempt(provider.name, outcome, time.monotonic() - started))
            if outcome == "ok":
                provider.breaker.succeeded()
                return text
            provider.breaker.failed()
            retryable = outcome in ("timeout", "server_error") or (
                outcome == "rate_limited" and wait is not None and wait <= self.longest_wait
            )
            if attempt or not retryable or not provider.breaker.allows():
                return None
            if wait:
                await asyncio.sleep(wait)
        return None


def _retry_after(exc: Any) -> float | None:
    try:
        return float(exc.response.headers.get("retry-after"))
    except (AttributeError, TypeError, ValueError):
        return None


def _summary(attempts: list[Attempt]) -> str:
    return ", ".join(f"{a.provider}: {a.outcome} {a.seconds:.2f}s" for a in attempts)

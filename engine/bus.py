"""Event bus: async publish/subscribe with typed events and a bounded queue per subscriber.

Slow-consumer policy: `publish` never blocks and never waits for a consumer. When a subscriber's
queue is full the OLDEST queued event is dropped to make room for the new one, the subscriber's
`dropped` counter grows and a warning is logged (at the 1st, 10th, 100th... drop).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

from core.events import Event

log = logging.getLogger(__name__)


class Subscription:
    """One consumer's bounded view of the bus."""

    def __init__(self, name: str, kinds: tuple[type[Event], ...], maxsize: int) -> None:
        self.name = name
        self.kinds = kinds
        self.maxsize = maxsize
        self.delivered = 0
        self.dropped = 0
        self.closed = False
        self._queue: deque[Event] = deque()
        self._ready = asyncio.Event()

    def offer(self, event: Event) -> None:
        """Queue an event without blocking, dropping the oldest one when full."""
        if self.closed:
            return
        if len(self._queue) >= self.maxsize:
            self._queue.popleft()
            self.dropped += 1
            if _is_power_of_ten(self.dropped):
                log.warning("bus subscriber %s is slow: %d events dropped so far", self.name, self.dropped)
        self._queue.append(event)
        self._ready.set()

    @property
    def depth(self) -> int:
        return len(self._queue)

    async def get(self) -> Event:
        """Next event, waiting for one; StopAsyncIteration once closed and drained."""
        while not self._queue:
            if self.closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        self.delivered += 1
        return self._queue.popleft()

    def get_nowait(self) -> Event:
        """The next queued event; IndexError when none is queued."""
        event = self._queue.popleft()
        self.delivered += 1
        return event

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.get()


def _is_power_of_ten(n: int) -> bool:
    while n >= 10 and n % 10 == 0:
        n //= 10
    return n == 1


class EventBus(Protocol):
    """What the engine and its consumers need from a bus, in memory or on Redis Streams."""

    def publish(self, event: Event) -> None: ...

    def subscribe(self, *kinds: type[Event], name: str = "", maxsize: int | None = None) -> Subscription: ...

    def has_subscribers(self, kind: type[Event]) -> bool: ...

    async def close(self) -> None: ...


class InMemoryBus:
    """The embedded bus for one process."""

    def __init__(self, default_maxsize: int = 10_000) -> None:
        self.default_maxsize = default_maxsize
        self.published = 0
        self._by_kind: dict[type[Event], list[Subscription]] = {}
        self._subscriptions: list[Subscription] = []

    def publish(self, event: Event) -> None:
        self.published += 1
        for subscription in self._by_kind.get(type(event), ()):
            subscription.offer(event)

    def subscribe(self, *kinds: type[Event], name: str = "", maxsize: int | None = None) -> Subscription:
        subscription = Subscription(
            name or f"subscriber-{len(self._subscriptions) + 1}", kinds, maxsize or self.default_maxsize
        )
        self._subscriptions.append(subscription)
        for kind in kinds:
            self._by_kind.setdefault(kind, []).append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.close()
        for subscribers in self._by_kind.values():
            if subscription in subscribers:
                subscribers.remove(subscription)
        self._subscriptions.remove(subscription)

    def has_subscribers(self, kind: type[Event]) -> bool:
        return bool(self._by_kind.get(kind))

    @property
    def dropped(self) -> dict[str, int]:
        return {s.name: s.dropped for s in self._subscriptions}

    async def close(self) -> None:
        for subscription in list(self._subscriptions):
            subscription.close()

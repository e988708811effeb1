"""Routes each signal to the outbox rows of every destination that wants it, and explanations to their rows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from bot.models import Destination
from bot.outbox import Outbox
from bot.subscriptions import Subscriptions
from core.events import Signal


class AlertRouter:
    """Signal in, outbox rows out; `static` destinations (console, alert channel, webhook) get every signal."""

    def __init__(
        self,
        subscriptions: Subscriptions,
        outbox: Outbox,
        *,
        static: Iterable[Destination] = (),
        on_queued: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        track_record: Callable[[Signal], dict[str, Any] | None] = lambda signal: None,
        positive_record: Callable[[Signal], bool] = lambda signal: False,
    ) -> None:
        self.subscriptions = subscriptions
        self.track_record = track_record  # the kind's record on the symbol before the signal, shown in its alert
        self.positive_record = positive_record  # the kind has a positive record on the symbol (/settings positive)
        self.outbox = outbox
        self.static = tuple(static)
        self.on_queued = on_queued
        self.clock = clock
        self._lock = asyncio.Lock()

    async def on_signal(self, signal: Signal) -> int:
        """Queue the signal's alert; returns how many destinations it reached (0 if it was already queued).

        Routes are written in chunks, and after each the event loop gets at least as long as the chunk took: a
        signal for ten thousand subscribers never holds the loop (and the feed ingesting on it) for more than a
        few milliseconds, nor more than half of it. Delivery starts with the first chunk."""
        async with self._lock:  # one routing at a time: the routes live in the connection's temp table
            hour = time.gmtime(self.clock()).tm_hour
            query = self.subscriptions.routes_query(signal, hour, self.positive_record(signal))
            chunks = self.outbox.collect_routes(signal, query, [(d, False, "en") for d in self.static])
            queued = 0
            record = self.track_record(signal) if chunks else None
            for low, high in chunks:
                started = time.perf_counter()
                reached = self.outbox.route_chunk(signal, low, high, record)
                if reached:
                    queued += reached
                    self.on_queued()
                await asyncio.sleep(time.perf_counter() - started)
        return queued

    async def on_explanation(self, signal_id: str, text: str, provider: str) -> int:
        """Keep the explanation (after any routing under way); returns how many sent alerts now wait for an edit."""
        async with self._lock:
            marked = self.outbox.add_explanation(signal_id, text, provider)
        if marked:
            self.on_queued()
        return marked

"""Routes each signal to the outbox rows of every destination that wants it, and explanations to their rows."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from bot.models import Destination
from bot.outbox import Outbox
from bot.subscriptions import Subscriptions
from engine.events import Signal


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
    ) -> None:
        self.subscriptions = subscriptions
        self.outbox = outbox
        self.static = tuple(static)
        self.on_queued = on_queued
        self.clock = clock

    def on_signal(self, signal: Signal) -> int:
        """Queue the signal's alert; returns how many destinations it reached (0 if it was already queued)."""
        hour = time.gmtime(self.clock()).tm_hour
        queued = self.outbox.add_alerts(
            signal, self.subscriptions.routes_query(signal, hour), [(d, False, "en") for d in self.static]
        )
        if queued:
            self.on_queued()
        return queued

    def on_explanation(self, signal_id: str, text: str, provider: str) -> int:
        """Keep the explanation; returns how many sent alerts now wait for an edit."""
        marked = self.outbox.add_explanation(signal_id, text, provider)
        if marked:
            self.on_queued()
        return marked

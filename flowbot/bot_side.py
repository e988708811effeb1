"""The bot side of a Flowbot process: the AI analyst and the bot service, fed by the bus's signals (the engine
shards publish them: in the same process for `flowbot run`, over Redis Streams for `flowbot bot`)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from ai.analyst import Analyst, Explanation, explain_from_bus
from ai.ask import Asker
from ai.providers import Completer, ProviderChain, providers_from
from ai.worker import ModelWorker
from bot.service import BotService
from core.events import PriceTick, Signal, StoreHealthChanged, WindowClosed
from core.metrics import Metrics
from core.settings import Settings
from engine.analysis.context import SymbolContext
from engine.bus import EventBus
from flowbot.ai_config import ai_config
from flowbot.bot_config import bot_config
from storage.feature_store import FeatureStore
from storage.signal_store import SignalStore

log = logging.getLogger(__name__)
RETRY_MAX_S = 5.0


async def until_written(write: Callable[[], Awaitable[object]], what: str) -> None:
    """Run `write` until the bot database takes it: while it is locked by another process, read-only or full, retry
    with backoff (the caller's later work waits behind it, so order is kept)."""
    delay = 0.25
    while True:
        try:
            await write()
            return
        except sqlite3.Error as exc:
            log.warning("cannot write %s to the bot database (%s); retrying in %.2f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX_S, delay * 2)


class BotSide:
    """The AI analyst and the bot service, fed by the bus's signals."""

    def __init__(
        self, settings: Settings, bus: EventBus, *, signal_store: SignalStore,
        contexts: Callable[[str], SymbolContext | None], feed_health: Callable[[], dict[str, Any] | None],
        metrics: Metrics, out: TextIO | None = sys.stdout,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.signal_store = signal_store
        self.started = asyncio.Event()  # the bot service started (each chat platform then starts on its own)
        self.providers = providers_from(ai_config(settings))
        self.worker = (ModelWorker(ai_config(settings), on_attempts=metrics.record_ai)  # model calls off this loop
                       if self.providers else None)
        store = FeatureStore(Path(settings.data_dir))
        complete: Completer = (self.worker.answer if self.worker is not None
                               else ProviderChain([], timeout=settings.ai_timeout).answer)
        self.analyst = Analyst(
            complete, contexts=contexts, signal_store=signal_store, concurrency=settings.ai_concurrency,
            track_record=lambda signal: self.bots.record_of(signal),
        )
        self.bots = BotService(
            bot_config(settings), store=store, signal_store=signal_store,
            asker=Asker(complete, store, symbols=settings.symbols, signal_store=signal_store,
                        rate_limit=settings.ask_rate_limit,
                        track_records=lambda symbol: [asdict(r) for r in self.bots.records.records(symbol)]),
            feed_health=feed_health, provider_health=lambda: {p.name: "configured" for p in self.providers},
            out=out,
        )
        metrics.watch_dispatchers(self.bots.dispatchers)
        metrics.watch_outbox(self.bots.outbox)
        metrics.watch_rules(self.bots.rules)
        self.to_analyst = bus.subscribe(Signal, name="analyst", maxsize=1_000)
        self.to_bots = bus.subscribe(Signal, name="bots", maxsize=10_000)
        self.store_health = bus.subscribe(StoreHealthChanged, name="store-health", maxsize=1_000)
        self.to_rules = bus.subscribe(WindowClosed, PriceTick, name="rules", maxsize=100_000)

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """For /readyz: started, and every chat platform up (those down are named with the reason)."""
        if not self.started.is_set():
            return False, {"bots": "starting"}
        problems = dict(self.bots.platform_problems)
        platforms = {a.sender.platform: problems.get(a.sender.platform, "ok") for a in self.bots.adapters}
        return not problems, {"bots": "started", "platforms": platforms}

    async def _explained(self, signal: Signal, explanation: Explanation) -> None:
        await until_written(lambda: self.bots.on_explanation(signal.id, explanation.text, explanation.provider),
                            f"the explanation of {signal.id}")

    async def run(self) -> None:
        """Explain and deliver until cancelled; then stop sending with the outbox consistent."""
        if self.worker is not None:
            await self.worker.start()
        await self.bots.start()
        self.started.set()
        tasks = [
            asyncio.create_task(explain_from_bus(self.analyst, self.to_analyst, self._explained), name="analyst"),
            asyncio.create_task(self._route(), name="bots"),
            asyncio.create_task(self._tell_store_health(), name="store-health"),
            asyncio.create_task(self._judge_rules(), name="rules"),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.bots.stop()
            if self.worker is not None:
                await self.worker.close()

    async def _route(self) -> None:
        """Store each signal (the bot owns the database) and route it; a signal seen twice is alerted once."""
        async for event in self.to_bots:
            if isinstance(event, Signal):
                self.signal_store.save(event)  # kept and written later if the database cannot take it now
                await until_written(partial(self.bots.on_signal, event), f"the alert of {event.id}")

    async def _tell_store_health(self) -> None:
        """Tell admins of each store that stops (or starts again) writing, as the engines publish it."""
        async for event in self.store_health:
            if isinstance(event, StoreHealthChanged):
                await until_written(partial(self._store_notice, event), "a storage notice")

    async def _store_notice(self, event: StoreHealthChanged) -> None:
        self.bots.scheduler.tell_store_health(event.store, event.healthy, event.reason)

    async def _judge_rules(self) -> None:
        """Judge users' alert rules on every closed window and trade batch (firings go to the outbox)."""
        await self.bots.rules.judge_from(self.to_rules)

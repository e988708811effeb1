"""The parts of a Flowbot process and how they are joined: an engine shard publishing on the bus, and the bot
side (AI analyst, bot service) consuming from it. `flowbot run` builds both on one bus; `flowbot engine` and
`flowbot bot` build one each, joined by Redis Streams."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from ai.analyst import Analyst, Explanation, explain_from_bus
from ai.ask import Asker
from ai.providers import Completer, ProviderChain, providers_from
from ai.worker import ModelWorker
from bot.service import BotService
from core.events import Signal
from core.metrics import Metrics
from core.settings import Settings
from core.trades import Trade
from engine.analysis.context import SymbolContext
from engine.analysis.pipeline import FlowPipeline
from engine.bus import EventBus
from flowbot.analysis_config import pipeline_config
from flowbot.bot_config import bot_config
from flowbot.feed_config import make_feed
from flowbot.ticker import WindowTicker
from storage.feature_store import FeatureStore
from storage.signal_store import SignalStore

log = logging.getLogger(__name__)

COMPACT_EVERY_S = 600


class Engine:
    """One shard: the feed of its symbols through the pipeline into the feature store, events on the bus."""

    def __init__(
        self, settings: Settings, bus: EventBus, *, symbols: list[str], signal_store: SignalStore | None,
        metrics: Metrics, out: TextIO | None = sys.stdout,
    ) -> None:
        self.settings = settings
        self.store = FeatureStore(Path(settings.data_dir), flush_interval=settings.flush_interval)
        self.feed = make_feed(settings, bus, symbols=symbols)
        self.pipeline = FlowPipeline(
            pipeline_config(settings), bus, store=self.store, signal_store=signal_store,
            by_trade_ids=self.feed.venue.by_trade_ids, on_signal=metrics.count_signal,
        )
        metrics.watch_feed(self.feed.health)
        self.ticker = WindowTicker(self.feed.symbols, settings.window_duration, self.feed.health, out) if out else None
        self.feed.on_trades = self._on_trades

    def _on_trades(self, symbol: str, trades: list[Trade]) -> None:
        if self.ticker is not None:
            self.ticker.add(symbol, trades)
        self.pipeline.on_trades(symbol, trades)

    async def run(self) -> None:
        """Stream until cancelled; the store is flushed on the way out."""
        housekeeping = asyncio.create_task(self._housekeeping(), name="engine-housekeeping")
        try:
            await self.feed.run()
        finally:
            housekeeping.cancel()
            await asyncio.gather(housekeeping, return_exceptions=True)
            self.store.close()

    async def _housekeeping(self) -> None:
        flushed = compacted = time.monotonic()
        while True:
            await asyncio.sleep(min(1.0, self.settings.window_duration / 2))
            if self.ticker is not None:
                self.ticker.print_closed()
            self.pipeline.close_idle(int(time.time() * 1000), self.feed.is_whole)
            if time.monotonic() - flushed >= self.settings.flush_interval:
                self.store.flush()
                flushed = time.monotonic()
            if time.monotonic() - compacted >= COMPACT_EVERY_S:  # one file per flush would pile up
                today = time.strftime("%Y-%m-%d", time.gmtime())
                for symbol in self.feed.symbols:
                    self.store.compact(symbol, today)
                compacted = time.monotonic()


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
        self.started = asyncio.Event()  # the adapters are up: the process is ready
        self.providers = providers_from(settings)
        self.worker = (ModelWorker(settings, on_attempts=metrics.record_ai)  # model calls off this loop
                       if self.providers else None)
        store = FeatureStore(Path(settings.data_dir))
        complete: Completer = (self.worker.answer if self.worker is not None
                               else ProviderChain([], timeout=settings.ai_timeout).answer)
        self.analyst = Analyst(
            complete, contexts=contexts, signal_store=signal_store, concurrency=settings.ai_concurrency
        )
        self.bots = BotService(
            bot_config(settings), store=store, signal_store=signal_store,
            asker=Asker(complete, store, symbols=settings.symbols, signal_store=signal_store,
                        rate_limit=settings.ask_rate_limit),
            feed_health=feed_health, provider_health=lambda: {p.name: "configured" for p in self.providers},
            out=out,
        )
        metrics.watch_dispatchers(self.bots.dispatchers)
        metrics.watch_outbox(self.bots.outbox)
        self.to_analyst = bus.subscribe(Signal, name="analyst", maxsize=1_000)
        self.to_bots = bus.subscribe(Signal, name="bots", maxsize=10_000)

    async def _explained(self, signal: Signal, explanation: Explanation) -> None:
        await self.bots.on_explanation(signal.id, explanation.text, explanation.provider)

    async def run(self) -> None:
        """Explain and deliver until cancelled; then stop sending with the outbox consistent."""
        if self.worker is not None:
            await self.worker.start()
        await self.bots.start()
        self.started.set()
        tasks = [
            asyncio.create_task(explain_from_bus(self.analyst, self.to_analyst, self._explained), name="analyst"),
            asyncio.create_task(self._route(), name="bots"),
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
                self.signal_store.save(event)
                await self.bots.on_signal(event)

"""An engine shard: the feed of its symbols through the pipeline into the feature store, publishing on the bus.
`flowbot run` joins it to the bot side (flowbot/bot_side.py) on one bus; `flowbot engine` runs it alone."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import TextIO

from core.metrics import Metrics
from core.settings import Settings
from core.trades import Trade
from engine.analysis.pipeline import FlowPipeline
from engine.bus import EventBus
from flowbot.analysis_config import pipeline_config
from flowbot.feed_config import make_feed
from flowbot.ticker import WindowTicker
from storage.feature_store import FeatureStore
from storage.signal_store import SignalStore

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
        self.feed.on_liquidations = self.pipeline.on_liquidations
        self.feed.on_marks = self.pipeline.on_marks

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

"""An engine shard: the feed of its symbols through the pipeline into the feature store, publishing on the bus.
`flowbot run` joins it to the bot side (flowbot/bot_side.py) on one bus; `flowbot engine` runs it alone."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import TextIO

from core.metrics import Metrics
from core.settings import Market, Settings
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
        helpers = [asyncio.create_task(self._housekeeping(), name="engine-housekeeping")]
        if self.settings.market is Market.USDM:
            helpers.append(asyncio.create_task(self._open_interest(), name="engine-open-interest"))
        try:
            await self.feed.run()
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self.store.close()

    async def _open_interest(self) -> None:
        """USD-M: poll each symbol's open interest into the pipeline (history first)."""
        import aiohttp

        from engine.venues.binance.open_interest import OpenInterestPoller
        from engine.venues.binance.rest import BinanceRest

        settings = self.settings
        async with aiohttp.ClientSession() as session:
            rest = BinanceRest(session, settings.rest_url, settings.market, max_attempts=settings.rest_max_attempts)
            poller = OpenInterestPoller(rest, self.feed.symbols, settings.oi_poll_interval,
                                        self.pipeline.on_open_interest)
            await poller.run()

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

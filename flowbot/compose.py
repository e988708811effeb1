"""An engine shard: the feed of its symbols through the pipeline into the feature store, publishing on the bus.
`flowbot run` joins it to the bot side (flowbot/bot_side.py) on one bus; `flowbot engine` runs it alone."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import TextIO

from core.metrics import Metrics
from core.settings import Settings
from engine.analysis.pipeline import FlowPipeline
from engine.bus import EventBus
from flowbot.analysis_config import pipeline_config
from flowbot.feed_config import make_feed
from flowbot.ticker import WindowTicker
from storage.feature_store import FeatureStore
from storage.signal_store import SignalStore

log = logging.getLogger(__name__)

COMPACT_EVERY_S = 600
BEHIND_AT_S = 5.0  # event-time lag at which the engine says it is behind the market (and again when it caught up)


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
        self.ticker = None
        if out is not None:
            self.ticker = WindowTicker(self.feed.symbols, settings.window_duration, self.feed.health, out,
                                       closed_through=self.pipeline.closed_through)
            self.pipeline.on_windows = self.ticker.add
        self.feed.on_trades = self.pipeline.on_trades
        self._behind = False

    def _report_lag(self, now: float) -> None:
        """One log line when the engine falls behind the market (event time), one when it has caught up."""
        behind = self.feed.health.behind_s(now)
        if not self._behind and behind >= BEHIND_AT_S:
            self._behind = True
            log.warning("behind the market by %.1f s (event time); catching up", behind)
        elif self._behind and behind < BEHIND_AT_S / 2:
            self._behind = False
            log.warning("caught up with the market: %.1f s behind (event time)", behind)

    async def run(self) -> None:
        """Stream until cancelled; the store is flushed on the way out."""
        housekeeping = asyncio.create_task(self._housekeeping(), name="engine-housekeeping")
        try:
            await self.feed.run()
        finally:
            housekeeping.cancel()
            await asyncio.gather(housekeeping, return_exceptions=True)
            self.pipeline.flush_corrections()
            self.store.close()

    async def _housekeeping(self) -> None:
        flushed = compacted = time.monotonic()
        while True:
            await asyncio.sleep(min(1.0, self.settings.window_duration / 2))
            self.feed.flush()  # released trades first: the watermark must not pass a trade the pipeline has not had
            now = time.time()
            self.pipeline.close_to_watermarks(self.feed.watermarks(now))
            self._report_lag(now)
            if self.ticker is not None:
                self.ticker.print_closed()
            if time.monotonic() - flushed >= self.settings.flush_interval:
                self.pipeline.flush_corrections()
                self.store.flush()
                flushed = time.monotonic()
            if time.monotonic() - compacted >= COMPACT_EVERY_S:  # one file per flush would pile up
                today = time.strftime("%Y-%m-%d", time.gmtime())
                for symbol in self.feed.symbols:
                    self.store.compact(symbol, today)
                compacted = time.monotonic()

"""An engine shard: the feed of its symbols through the pipeline into the feature store, publishing on the bus.
`flowbot run` joins it to the bot side (flowbot/bot_side.py) on one bus; `flowbot engine` runs it alone."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import TextIO

from core.events import PriceTick
from core.metrics import Metrics
from core.settings import Market, Settings
from core.store_health import StoreHealth
from core.trades import Trade
from engine.analysis.pipeline import FlowPipeline
from engine.bus import EventBus
from engine.price_ticks import price_tick
from flowbot.analysis_config import pipeline_config
from flowbot.feed_config import make_feed
from flowbot.store_watch import watch_stores
from flowbot.ticker import WindowTicker
from storage.feature_store import FeatureStore
from storage.signal_store import SignalStore
from storage.window_record import claim_window_duration

log = logging.getLogger(__name__)

COMPACT_EVERY_S = 600
BEHIND_AT_S = 5.0  # event-time lag at which the engine says it is behind the market (and again when it caught up)


class Engine:
    """One shard: the feed of its symbols through the pipeline into the feature store, events on the bus."""

    def __init__(
        self, settings: Settings, bus: EventBus, *, symbols: list[str], signal_store: SignalStore | None,
        metrics: Metrics, out: TextIO | None = sys.stdout, store_health: StoreHealth | None = None,
    ) -> None:
        """store_health: shared with the process's signal store, so that one watch reports both."""
        self.settings = settings
        self.bus = bus
        self.metrics = metrics
        self.store_health = store_health or StoreHealth()
        claim_window_duration(Path(settings.data_dir), int(settings.window_duration * 1000))
        self.store = FeatureStore(Path(settings.data_dir), flush_interval=settings.flush_interval,
                                  health=self.store_health, write_behind=True)
        self.feed = make_feed(settings, bus, symbols=symbols)
        self.pipeline = FlowPipeline(
            pipeline_config(settings), bus, store=self.store, signal_store=signal_store,
            by_trade_ids=self.feed.venue.by_trade_ids, on_signal=metrics.count_signal,
        )
        metrics.watch_feed(self.feed.health)
        metrics.watch_stores(self.store_health)
        self.ticker = None
        if out is not None:
            self.ticker = WindowTicker(self.feed.symbols, settings.window_duration, self.feed.health, out,
                                       closed_through=self.pipeline.closed_through)
            self.pipeline.on_windows = self.ticker.add
        self.feed.on_trades = self._on_trades
        self._behind = False
        self.feed.on_liquidations = self.pipeline.on_liquidations
        self.feed.on_marks = self.pipeline.on_marks

    def _report_lag(self, now: float) -> None:
        """One log line when the engine falls behind the market (event time), one when it has caught up."""
        behind = self.feed.health.behind_s(now)
        if not self._behind and behind >= BEHIND_AT_S:
            self._behind = True
            log.warning("behind the market by %.1f s (event time); catching up", behind)
        elif self._behind and behind < BEHIND_AT_S / 2:
            self._behind = False
            log.warning("caught up with the market: %.1f s behind (event time)", behind)

    def _on_trades(self, symbol: str, trades: list[Trade]) -> None:
        self.pipeline.on_trades(symbol, trades)
        if self.bus.has_subscribers(PriceTick):  # the bot's price rules
            tick = price_tick(symbol, trades)
            if tick is not None:
                self.bus.publish(tick)

    async def run(self) -> None:
        """Stream until cancelled (or a store stalled: StoreStalled); the store is flushed on the way out."""
        helpers = [asyncio.create_task(self._housekeeping(), name="engine-housekeeping")]
        if self.settings.market is Market.USDM:
            helpers.append(asyncio.create_task(self._open_interest(), name="engine-open-interest"))
        parts = [asyncio.create_task(self.feed.run(), name="feed"),
                 asyncio.create_task(watch_stores(self.store_health, self.bus), name="store-health")]
        try:
            done, _ = await asyncio.wait(parts, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in (*parts, *helpers):
                task.cancel()
            await asyncio.gather(*parts, *helpers, return_exceptions=True)
            self._close_store()

    def _close_store(self) -> None:
        try:
            self.pipeline.flush_corrections()
            self.store.close()
        except Exception as exc:  # the rows were kept in memory; say what is lost instead of a traceback
            log.error("%d windows could not be written before stopping (%s)", self.store.pending_rows, exc)

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
        """The housekeeping rounds, forever: a failure is logged, counted and the rounds go on (a failed flush keeps
        its rows, and the next round's flush retries them)."""
        seen: set[str] = set()
        while True:
            try:
                await self._housekeeping_rounds()
            except Exception as exc:
                error = type(exc).__name__
                self.metrics.housekeeping_errors.labels(error).inc()
                log.error("engine housekeeping failed (%s: %s); retrying", error, exc, exc_info=error not in seen)
                seen.add(error)

    async def _housekeeping_rounds(self) -> None:
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
                self.store.flush_behind()  # a file per symbol and fsyncs: off the event loop
                flushed = time.monotonic()
            if time.monotonic() - compacted >= COMPACT_EVERY_S:  # one file per flush would pile up
                today = time.strftime("%Y-%m-%d", time.gmtime())
                for symbol in self.feed.symbols:
                    self.store.compact(symbol, today)
                compacted = time.monotonic()

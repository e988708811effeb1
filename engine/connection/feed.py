"""The trade feed of one venue: connections -> decoding -> validation -> sequencing -> trades, never losing one."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable

import aiohttp

from core.events import FeedHealthReport, Gap, GapUnfilled, TradeBatch
from core.futures import Liquidation, MarkPrice
from core.health import ConnectionHealth, FeedHealth
from core.trades import Trade
from engine.bus import EventBus
from engine.connection.config import FeedConfig
from engine.connection.pacing import ConnectionPacer
from engine.connection.sequencer import Sequencer
from engine.connection.supervisor import ConnectionSupervisor
from engine.connection.websocket import StreamConnection
from engine.venues.base import Backfiller, Rejection, ShutdownNotice, Venue

log = logging.getLogger(__name__)

BACKFILLS_AT_ONCE = 4

TradeSink = Callable[[str, list[Trade]], None]
LiquidationSink = Callable[[str, list[Liquidation]], None]
MarkSink = Callable[[str, list[MarkPrice]], None]


class MarketFeed:
    """Delivers every trade of the configured symbols once, in id order, to `on_trades` (in line) and the bus."""

    def __init__(
        self,
        venue: Venue,
        config: FeedConfig,
        bus: EventBus,
        *,
        on_trades: TradeSink | None = None,
        pacer: ConnectionPacer | None = None,
    ) -> None:
        self.venue = venue
        self.config = config
        self.bus = bus
        self.on_trades = on_trades
        self.on_liquidations: LiquidationSink | None = None
        self.liquidations_elsewhere = 0  # liquidations of symbols this feed does not follow (!forceOrder@arr)
        self.on_marks: MarkSink | None = None
        self.symbols = list(config.symbols)
        self.health = FeedHealth()
        self.validator = venue.validator(
            max_clock_skew=config.max_clock_skew, rejected=self.health.rejected
        )  # unknown symbols are caught by the sequencer lookup
        limits = venue.limits
        self.pacer = pacer or ConnectionPacer(limits.connections_per_period, limits.connection_period)
        self._decode = venue.decode
        self._loop: asyncio.AbstractEventLoop | None = None
        self._out: dict[str, list[Trade]] = {}
        self._flush_scheduled = False
        self.sequencers = {symbol: self._make_sequencer(symbol) for symbol in self.symbols}
        self._session: aiohttp.ClientSession | None = None
        self._backfiller: Backfiller | None = None
        self._rest_slots = asyncio.Semaphore(BACKFILLS_AT_ONCE)
        self._backfills: dict[str, asyncio.Task[None]] = {}
        self._catch_up: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.supervisors: list[ConnectionSupervisor] = []
        self._connection_of: dict[str, str] = {}
        self._symbols_on: dict[str, list[str]] = {}  # connection name -> its symbols
        self.started = asyncio.Event()

    # -- wiring ---------------------------------------------------------------------------------

    def _make_sequencer(self, symbol: str) -> Sequencer:
        out = self._out[symbol] = []
        health = self.health.symbol(symbol)

        def release(trade: Trade) -> None:
            out.append(trade)
            health.trades += 1
            if not self._flush_scheduled:
                self._flush_scheduled = True
                assert self._loop is not None
                self._loop.call_soon(self.flush)

        return Sequencer(
            symbol, by_trade_ids=self.venue.by_trade_ids, health=health, release=release,
            on_gap=self._on_gap, on_unfilled=self._on_unfilled,
        )

    def stream_slices(self) -> list[list[str]]:
        """Stream names per connection: at most the venue's streams per connection on one."""
        streams = self.venue.stream_names(self.symbols)
        per_connection = self.venue.limits.streams_per_connection
        return [streams[i : i + per_connection] for i in range(0, len(streams), per_connection)]

    async def run(self) -> None:
        """Connect and stream until cancelled."""
        self._loop = asyncio.get_running_loop()
        config = self.config
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0))
        self._backfiller = self.venue.backfiller(
            self._session, config.rest_url, self.validator, max_attempts=config.rest_max_attempts
        )
        try:
            for index, streams in enumerate(self.stream_slices()):
                name = f"{self.venue.name}-{index}"
                health = self.health.connections[name] = ConnectionHealth(name, len(streams))
                symbols = list(dict.fromkeys(symbol for s in streams if (symbol := self.venue.symbol_of(s))))
                self._connection_of.update(dict.fromkeys(symbols, name))
                self._symbols_on[name] = symbols
                for symbol in symbols:
                    self.sequencers[symbol].health.connection = name
                supervisor = ConnectionSupervisor(
                    name, self._connection_factory(streams), config.supervisor, health, self.bus, self.pacer,
                    on_resumed=functools.partial(self._request_catch_up, symbols),
                )
                self.supervisors.append(supervisor)
                self._tasks.append(asyncio.create_task(supervisor.run(), name=f"supervisor-{name}"))
            self._tasks.append(asyncio.create_task(self._report_health(), name="feed-health"))
            self.started.set()
            await asyncio.gather(*self._tasks)
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        for task in [*self._tasks, *self._backfills.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._backfills.values(), return_exceptions=True)
        for supervisor in self.supervisors:
            await supervisor.close()
        self.flush()
        if self._session is not None:
            await self._session.close()

    def _connection_factory(self, streams: list[str]) -> Callable[[str], StreamConnection]:
        url = self.venue.connection_url(self.config.ws_url, streams)
        requests = self.venue.subscribe_requests(streams)

        def make(name: str) -> StreamConnection:
            assert self._session is not None
            return StreamConnection(
                self._session, url, requests, name=name, on_text=self.handle_text,
                on_bad_frame=self.validator.reject, ping_interval=self.config.ping_interval,
                control_per_second=self.venue.limits.control_messages_per_second,
            )

        return make

    def is_whole(self, symbol: str) -> bool:
        """Connected, with no gap held open or backfill running: the symbol's windows may close on time."""
        connection = self.health.connections.get(self._connection_of.get(symbol, ""))
        backfill = self._backfills.get(symbol)
        return (
            connection is not None and connection.connected and not self.sequencers[symbol].pending
            and (backfill is None or backfill.done())
        )

    def watermarks(self, now: float) -> dict[str, int]:
        """Per symbol whose feed is whole, the event time (ms) its connection has released trades through.

        A connection's watermark is the newest trade time it released (in id order, per symbol), moved on by the
        wall-clock time since it last received a trade: on a busy connection that is a moment, so windows close by
        event time however far behind the process or Binance's stream is; a silent connection (an idle market) has
        its watermark carried forward by the clock. A process that is behind keeps receiving (the reader drains
        the socket before this runs), so nothing still unread can be older than the watermark. Each connection's
        watermark and processing lag (receive time - Binance's event time of its newest trade) go to its health.
        """
        marks: dict[str, int] = {}
        for name, symbols in self._symbols_on.items():
            connection = self.health.connections[name]
            healths = [self.sequencers[symbol].health for symbol in symbols]
            released = [t for symbol in symbols if (t := self.sequencers[symbol].last_trade_time) is not None]
            received = [h for h in healths if h.last_receive_at is not None]
            if not released or not received:
                continue
            newest = max(received, key=lambda h: h.last_receive_at or 0.0)
            assert newest.last_receive_at is not None
            watermark = max(released) + max(0, int((now - newest.last_receive_at) * 1000))
            connection.watermark_ms = max(watermark, connection.watermark_ms or watermark)
            connection.processing_lag_ms = newest.lag_ms
            marks.update((symbol, connection.watermark_ms) for symbol in symbols if self.is_whole(symbol))
        return marks

    # -- the per-message path -------------------------------------------------------------------

    def handle_text(self, text: str, connection: StreamConnection) -> None:
        """Decode, validate and sequence one WebSocket text frame."""
        trade = self._decode(text)
        if not isinstance(trade, Trade):
            self._handle_other(trade, connection)
            return
        sequencer = self.sequencers.get(trade.symbol)
        if sequencer is None:
            self.validator.reject("unknown_symbol", trade.symbol)
            return
        health = sequencer.health
        health.messages += 1
        reason = self.validator.check(trade)
        if reason is not None:
            self.validator.reject(reason, f"{trade.symbol} id={trade.id}")
            return
        health.last_receive_at = time.time()
        health.last_event_time_ms = trade.event_time
        sequencer.accept(trade)

    def _handle_other(
        self, frame: Liquidation | MarkPrice | Rejection | ShutdownNotice | None, connection: StreamConnection
    ) -> None:
        """A frame without a trade: liquidations and mark prices go to their sinks, a shutdown notice rotates the
        connection, a rejection is counted."""
        if isinstance(frame, Liquidation):
            self._liquidation(frame)
        elif isinstance(frame, MarkPrice):
            self._mark(frame)
        elif isinstance(frame, ShutdownNotice):
            log.warning("connection %s: %s; rotating", connection.name, frame.text)
            connection.shutdown_notice.set()
        elif frame is not None:
            if frame.warning:
                log.warning("connection %s: %s", connection.name, frame.warning)
            self.validator.reject(frame.reason, frame.detail)

    def _liquidation(self, order: Liquidation) -> None:
        """Validate a liquidation order and hand it on at once (they are not sequenced: they carry no ids)."""
        sequencer = self.sequencers.get(order.symbol)
        if sequencer is None:
            if self.venue.all_liquidations:  # !forceOrder@arr carries every symbol's: another shard's, say
                self.liquidations_elsewhere += 1
            else:
                self.validator.reject("unknown_symbol", order.symbol)
            return
        sequencer.health.messages += 1
        reason = self.validator.check_liquidation(order)
        if reason is not None:
            self.validator.reject(reason, f"{order.symbol} liquidation at {order.trade_time}")
        elif self.on_liquidations is not None:
            self.flush()  # the trades received before it go first
            self.on_liquidations(order.symbol, [order])

    def _mark(self, mark: MarkPrice) -> None:
        """Validate a mark price update and hand it on at once."""
        sequencer = self.sequencers.get(mark.symbol)
        if sequencer is None:
            self.validator.reject("unknown_symbol", mark.symbol)
            return
        sequencer.health.messages += 1
        reason = self.validator.check_mark(mark)
        if reason is not None:
            self.validator.reject(reason, f"{mark.symbol} mark price at {mark.event_time}")
        elif self.on_marks is not None:
            self.flush()
            self.on_marks(mark.symbol, [mark])

    def flush(self) -> None:
        """Hand released trades to the pipeline (in line) and publish them, per symbol."""
        self._flush_scheduled = False
        publish = self.bus.has_subscribers(TradeBatch)
        for symbol, out in self._out.items():
            if not out:
                continue
            batch = out.copy()
            out.clear()
            if self.on_trades is not None:
                self.on_trades(symbol, batch)
            if publish:
                self.bus.publish(TradeBatch(symbol, tuple(batch)))

    # -- gaps and backfill ----------------------------------------------------------------------

    def _on_gap(self, sequencer: Sequencer) -> None:
        missing = sequencer.missing()
        log.info("%s: gap found, ids %s..%s missing; backfilling", sequencer.symbol, *(missing or ("?", "?")))
        self._start_backfill(sequencer.symbol, self.config.gap_grace)

    def _on_unfilled(self, gap: Gap) -> None:
        self.health.unfilled_gaps.append(gap)
        log.error("%s: ids %d..%d (%d) could not be recovered: %s", gap.symbol, gap.first_missing,
                  gap.last_missing, gap.count, gap.reason)
        self.bus.publish(GapUnfilled(gap))

    def _request_catch_up(self, symbols: list[str]) -> None:
        """After a reconnect, fetch what was printed while the connection was down."""
        for symbol in symbols:
            if self.sequencers[symbol].last is not None:
                self._catch_up.add(symbol)
                self._start_backfill(symbol, 0.0)

    def _start_backfill(self, symbol: str, delay: float) -> None:
        task = self._backfills.get(symbol)
        if task is None or task.done():
            self._backfills[symbol] = asyncio.create_task(self._backfill(symbol, delay), name=f"backfill-{symbol}")

    async def _backfill(self, symbol: str, delay: float) -> None:
        """After `delay`, let the venue's backfiller fill the symbol's gaps, a few symbols at once."""
        await asyncio.sleep(delay)
        assert self._backfiller is not None
        async with self._rest_slots:
            await self._backfiller.fill(self.sequencers[symbol], self._catch_up)
        self.flush()

    async def _report_health(self) -> None:
        while True:
            await asyncio.sleep(self.config.health_report_interval)
            self.bus.publish(FeedHealthReport(self.health.snapshot()))

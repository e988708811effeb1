"""The Binance trade feed: connections -> parsing -> validation -> sequencing -> trades, never losing one."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from core.events import FeedHealthReport, Gap, GapUnfilled, TradeBatch
from core.health import ConnectionHealth, FeedHealth
from core.settings import Settings, StreamKind
from core.trades import Trade
from engine.analysis.validator import TradeValidator
from engine.bus import EventBus
from engine.connection.binance_messages import (
    SERVER_SHUTDOWN,
    InvalidMessage,
    rest_row_to_event,
    stream_name,
    trade_from_aggtrade,
    trade_from_trade,
    unwrap,
)
from engine.connection.pacing import ConnectionPacer
from engine.connection.rest import MAX_PAGE, BinanceRest, RestError
from engine.connection.sequencer import Sequencer
from engine.connection.supervisor import ConnectionSupervisor, SupervisorPolicy
from engine.connection.websocket import StreamConnection

log = logging.getLogger(__name__)

MAX_STREAMS_PER_CONNECTION = 1024
BACKFILLS_AT_ONCE = 4
HOUR_MS = 3_600_000

TradeSink = Callable[[str, list[Trade]], None]


class BinanceFeed:
    """Delivers every trade of the configured symbols once, in id order, to `on_trades` (in line) and the bus."""

    def __init__(
        self,
        settings: Settings,
        bus: EventBus,
        *,
        on_trades: TradeSink | None = None,
        symbols: list[str] | None = None,
        pacer: ConnectionPacer | None = None,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.on_trades = on_trades
        self.symbols = list(symbols or settings.symbols)
        self.kind = settings.stream
        self.health = FeedHealth()
        self.validator = TradeValidator(
            live=True, max_clock_skew=settings.max_clock_skew, rejected=self.health.rejected
        )  # unknown symbols are caught by the sequencer lookup
        self.pacer = pacer or ConnectionPacer()
        self._kind_name = self.kind.value
        self._parse = trade_from_trade if self.kind is StreamKind.TRADE else trade_from_aggtrade
        self._by_trade_ids = self.kind is StreamKind.TRADE
        self._loop: asyncio.AbstractEventLoop | None = None
        self._out: dict[str, list[Trade]] = {}
        self._flush_scheduled = False
        self.sequencers = {symbol: self._make_sequencer(symbol) for symbol in self.symbols}
        self._session: aiohttp.ClientSession | None = None
        self._rest: BinanceRest | None = None
        self._rest_slots = asyncio.Semaphore(BACKFILLS_AT_ONCE)
        self._backfills: dict[str, asyncio.Task[None]] = {}
        self._catch_up: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.supervisors: list[ConnectionSupervisor] = []
        self._connection_of: dict[str, str] = {}
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
            symbol, by_trade_ids=self._by_trade_ids, health=health, release=release,
            on_gap=self._on_gap, on_unfilled=self._on_unfilled,
        )

    def stream_slices(self) -> list[list[str]]:
        """Stream names per connection: at most 1024 on one connection."""
        streams = [stream_name(symbol, self.kind.value) for symbol in self.symbols]
        return [
            streams[i : i + MAX_STREAMS_PER_CONNECTION]
            for i in range(0, len(streams), MAX_STREAMS_PER_CONNECTION)
        ]

    async def run(self) -> None:
        """Connect and stream until cancelled."""
        self._loop = asyncio.get_running_loop()
        settings = self.settings
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0))
        self._rest = BinanceRest(self._session, settings.rest_url, settings.market,
                                 max_attempts=settings.rest_max_attempts)
        policy = SupervisorPolicy(
            health_check_interval=settings.health_check_interval,
            stall_timeout=settings.ws_stall_timeout,
            rotate_after=settings.ws_rotate_after,
            rotation_overlap=settings.ws_rotation_overlap,
            max_failures=settings.ws_max_reconnect_attempts,
            base_delay=settings.ws_reconnect_base_delay,
            max_delay=settings.ws_reconnect_max_delay,
        )
        try:
            for index, streams in enumerate(self.stream_slices()):
                name = f"{settings.market.value}-{index}"
                health = self.health.connections[name] = ConnectionHealth(name, len(streams))
                symbols = [s.split("@")[0].upper() for s in streams]
                self._connection_of.update(dict.fromkeys(symbols, name))
                supervisor = ConnectionSupervisor(
                    name, self._connection_factory(streams), policy, health, self.bus, self.pacer,
                    on_resumed=lambda symbols=symbols: self._request_catch_up(symbols),
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
        def make(name: str) -> StreamConnection:
            assert self._session is not None
            return StreamConnection(
                self._session, self.settings.ws_url, streams, name=name, on_text=self.handle_text,
                on_bad_frame=self.validator.reject, ping_interval=self.settings.ws_ping_interval,
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

    # -- the per-message path -------------------------------------------------------------------

    def handle_text(self, text: str, connection: StreamConnection) -> None:
        """Parse, validate and sequence one WebSocket text frame."""
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.validator.reject("malformed_json", repr(text[:80]))
            return
        try:
            data = message["data"]
            kind = data["e"]
        except (KeyError, TypeError, IndexError):
            data = self._bare_event(message, connection)
            if data is None:
                return
            kind = data["e"]
        if kind != self._kind_name:
            if kind == SERVER_SHUTDOWN:
                log.warning("connection %s: Binance announced serverShutdown; rotating", connection.name)
                connection.shutdown_notice.set()
            else:
                self.validator.reject("unexpected_event", repr(kind))
            return
        try:
            trade = self._parse(data)
        except InvalidMessage as exc:
            self.validator.reject(exc.reason, str(exc))
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

    def _bare_event(self, message: Any, connection: StreamConnection) -> dict[str, Any] | None:
        """A message without the combined-stream wrapper: a bare event is returned, the rest handled here."""
        if isinstance(message, dict):
            if "e" in message and "data" not in message:
                return message
            if "result" in message and "id" in message:
                return None
            if "error" in message:
                log.warning("connection %s: Binance error %s", connection.name, message["error"])
                self.validator.reject("server_error_message", repr(message["error"]))
                return None
        try:
            unwrap(message)
        except InvalidMessage as exc:
            self.validator.reject(exc.reason, repr(message)[:80])
            return None
        self.validator.reject("missing_field", repr(message)[:80])
        return None

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
        self._start_backfill(sequencer.symbol, self.settings.gap_grace)

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
        """Fill open gaps (and catch up after reconnects) from REST until closed or recorded unfilled."""
        await asyncio.sleep(delay)
        sequencer = self.sequencers[symbol]
        cursor: int | None = None
        async with self._rest_slots:
            while sequencer.missing() is not None or symbol in self._catch_up:
                gap = sequencer.missing()
                before = (sequencer.last, len(sequencer.pending))
                try:
                    rows = await self._fetch(sequencer, cursor)
                except RestError as exc:
                    cursor = None
                    if gap is not None:
                        sequencer.skip_gap(f"backfill failed: {exc}")
                    else:
                        log.warning("%s: catch-up after reconnect failed: %s", symbol, exc)
                        self._catch_up.discard(symbol)
                    continue
                trades = self._trades_from_rest(symbol, rows)
                if self._by_trade_ids:
                    cursor = trades[-1].id + 1 if trades else None
                    accepted = sequencer.fill_from_aggregates(trades)
                else:
                    end = gap[1] if gap is not None else None  # a gap's backfill fills the gap, nothing past it
                    accepted = sum(sequencer.accept(t) for t in trades if end is None or t.id <= end)
                sequencer.health.backfilled += accepted
                progressed = (sequencer.last, len(sequencer.pending)) != before
                if len(rows) == MAX_PAGE and (progressed or cursor is not None):
                    continue
                if gap is not None and sequencer.missing() == gap:
                    sequencer.skip_gap("not available from REST")
                elif gap is None:
                    self._catch_up.discard(symbol)
                cursor = None
        self.flush()

    async def _fetch(self, sequencer: Sequencer, cursor: int | None) -> list[dict[str, Any]]:
        assert self._rest is not None and sequencer.last is not None
        if not self._by_trade_ids:
            return await self._rest.agg_trades(sequencer.symbol, from_id=sequencer.last + 1)
        if cursor is not None:
            return await self._rest.agg_trades(sequencer.symbol, from_id=cursor)
        start = sequencer.last_trade_time or 0
        return await self._rest.agg_trades(sequencer.symbol, start_time=start, end_time=start + HOUR_MS - 1)

    def _trades_from_rest(self, symbol: str, rows: list[dict[str, Any]]) -> list[Trade]:
        trades = []
        for row in rows:
            try:
                trade = trade_from_aggtrade(rest_row_to_event(row, symbol))
            except InvalidMessage as exc:
                self.validator.reject(exc.reason, f"REST row for {symbol}")
                continue
            if self.validator.accept(trade):
                trades.append(trade)
        return trades

    async def _report_health(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_check_interval)
            self.bus.publish(FeedHealthReport(self.health.snapshot()))

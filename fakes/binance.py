"""Fake Binance market-data server (WebSocket combined streams + REST aggTrades) replaying real recordings."""

from __future__ import annotations

import asyncio
import functools
import math
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate, groupby, pairwise
from operator import itemgetter
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from fakes.loopback import LoopbackServer

_REST_PREFIX = {"spot": "/api/v3", "usdm": "/fapi/v1"}
_STREAMS_PER_CONNECTION = {"spot": 1024, "usdm": 200}  # Binance's limits per connection, by market
_CONTROL_PER_SECOND = {"spot": 5, "usdm": 10}
_QUOTE_ASSETS = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "BRL", "AUD", "TRY")
# USD-M's routed paths: high-frequency book streams on /public, every other market stream on /market; a connection
# on the bare /stream is served the public streams only (as Binance does since its WebSocket change notice).
_PUBLIC_EVENTS = ("bookTicker", "depth")
_USDM_ROUTES = ("public", "market")
_CONTROL_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS")
_ROW_FIELDS = ("a", "p", "q", "f", "l", "T", "m")
_QUERY_INTS = ("fromId", "startTime", "endTime", "limit")
_row_values = itemgetter(*_ROW_FIELDS)
_FIRST_SYNTHETIC_ID = 1_000_000
_CLOSE_TIMEOUT = 0.5  # seconds a closing side waits for the peer's close frame
_ABORT_FLUSH_TIMEOUT = 1.0  # seconds an abort waits for already written frames to leave
_MISSING_FIELDS = '{"stream":"x@aggTrade","data":{"e":"aggTrade"}}'
_BINARY_GARBAGE = b"\x00\x01\x02\xffnot a text frame"
_INVALID_JSON = object()

Json = dict[str, Any]


@dataclass
class ConnectionFault:
    """Faults of one accepted WebSocket connection, counted in data messages actually sent on it."""

    close_after: int | None = None
    stall_after: int | None = None
    shutdown_after: int | None = None
    skip_after: int | None = None
    skip_count: int = 0
    garbage_after: int | None = None


def stream_key(stream: str) -> str:
    """A stream name as matched: symbol lowercased, event part kept case-sensitive (as Binance); all-market
    streams (!forceOrder@arr, !markPrice@arr@1s) as they are."""
    if stream.startswith("!"):
        return stream
    symbol, at, event = stream.partition("@")
    return symbol.lower() + at + event


def _json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response encoded with orjson."""
    return web.Response(body=orjson.dumps(body), status=status, headers=headers, content_type="application/json")


def served_on(market: str, route: str | None, stream: str) -> bool:
    """Whether a connection on `route` (None: the unrouted /stream) of `market` is sent `stream`'s messages."""
    if market == "spot":
        return route is None
    public = stream.partition("@")[2].startswith(_PUBLIC_EVENTS)
    return route == "market" if not public else route in (None, "public")


def _rest_row(event: Json, with_best_match: bool) -> Json:
    """An aggTrade event (WebSocket-shaped or synthesised) as a REST aggTrades row."""
    row = dict(zip(_ROW_FIELDS, _row_values(event), strict=True))
    if with_best_match:
        row["M"] = event.get("M", True)
    return row


def _ascending(values: list[int]) -> bool:
    """True if the values never decrease."""
    return all(a <= b for a, b in pairwise(values))


def _merge_trades(trades: list[tuple[int, Json]]) -> list[tuple[int, Json]]:
    """Consecutive @trade events with equal T, p and m merged into aggTrades, each at its last trade's index."""
    merged = []
    groups = groupby(trades, key=lambda item: (item[1]["T"], item[1]["p"], item[1]["m"]))
    for number, (_, items) in enumerate(groups):
        group = list(items)
        first, last = group[0][1], group[-1][1]
        quantities = [data["q"] for _, data in group]
        places = max(len(q.partition(".")[2]) for q in quantities)
        total = sum(map(Decimal, quantities), Decimal(0))
        event = {"a": _FIRST_SYNTHETIC_ID + number, "p": first["p"], "q": f"{total:.{places}f}", "f": first["t"]}
        event.update({"l": last["t"], "T": first["T"], "m": first["m"], "M": first.get("M", True)})
        merged.append((group[-1][0], event))
    return merged


def _place_history(messages: list[Json], history: dict[str, list[Json]]) -> dict[str, list[tuple[int, Json]]]:
    """Given history events, each at the tape index of its own aggTrade message, else by trade time."""
    tape_ids = {
        (d["s"], d["a"]): index
        for index, m in enumerate(messages)
        if (d := m["data"]).get("e") == "aggTrade" and d["s"] in history
    }
    clock = list(accumulate((m["data"].get("T", 0) for m in messages), max))
    placed = {}
    for symbol, events in history.items():
        entries = []
        for event in events:
            index = tape_ids.get((symbol, event["a"]))
            entries.append((bisect_right(clock, event["T"]) - 1 if index is None else index, event))
        placed[symbol] = entries
    return placed


class _History:
    """One symbol's aggTrade events, ascending by id, each with the tape index after which it exists."""

    def __init__(self, entries: list[tuple[int, Json]]) -> None:
        if not _ascending([event["a"] for _, event in entries]):
            entries = sorted(entries, key=lambda entry: entry[1]["a"])
        self.events = [event for _, event in entries]
        self._played_at = [index for index, _ in entries]
        self._ids = [event["a"] for event in self.events]
        self._times = [event["T"] for event in self.events]
        self._monotonic = _ascending(self._played_at) and _ascending(self._times)

    def query(self, played: int, from_id: int | None, start: int | None, end: int | None, limit: int) -> list[Json]:
        """Played events from from_id, else with T in [start, end], else the most recent; at most limit."""
        if not self._monotonic:
            return self._scan(played, from_id, start, end, limit)
        known = bisect_left(self._played_at, played)
        if from_id is not None:
            low = bisect_left(self._ids, from_id, 0, known)
            return self.events[low : min(known, low + limit)]
        if start is None and end is None:
            return self.events[max(0, known - limit) : known]
        low = 0 if start is None else bisect_left(self._times, start, 0, known)
        high = known if end is None else bisect_right(self._times, end, 0, known)
        return self.events[low : min(high, low + limit)]

    def _scan(self, played: int, from_id: int | None, start: int | None, end: int | None, limit: int) -> list[Json]:
        """Query by a linear scan, for histories whose ids, times and tape order disagree."""
        events = [event for event, at in zip(self.events, self._played_at, strict=True) if at < played]
        if from_id is not None:
            return [event for event in events if event["a"] >= from_id][:limit]
        if start is None and end is None:
            return events[-limit:]
        low = -math.inf if start is None else start
        high = math.inf if end is None else end
        return [event for event in events if low <= event["T"] <= high][:limit]


class _Connection:
    """One accepted WebSocket connection: its streams, its fault state and its control-message rate."""

    def __init__(
        self,
        server: FakeBinance,
        number: int,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        fault: ConnectionFault | None,
        route: str | None = None,
    ) -> None:
        self.server = server
        self.route = route
        self.number = number
        self.ws = ws
        self.transport = transport
        self.fault = fault
        self.streams: dict[str, None] = {}
        self.sent = 0
        self.alive = True
        self._stalled = False
        self._skip_left = 0
        self._garbage_at = fault.garbage_after if fault else None
        self._control_times: deque[float] = deque()
        self._close_timer: asyncio.TimerHandle | None = None
        self._pinger: asyncio.Task[None] | None = None

    async def run(self, streams: list[str]) -> None:
        """Apply faults due at 0 messages, subscribe the URL's streams, then serve until the socket ends."""
        if self.fault:
            await self._after_sent()
        if self.alive and not self.server._subscribe(self, streams):
            await self._send_json({"error": {"code": 2, "msg": "too many streams"}})
            await self.close()
            return
        if self.alive and self.server.ping_interval:
            self._pinger = self.server._spawn(self._ping_every(self.server.ping_interval))
        async for msg in self.ws:
            if msg.type is WSMsgType.TEXT:
                await self._on_text(msg.data)
            elif msg.type is WSMsgType.PING:
                await self._send_quietly(self.ws.pong(msg.data))
            elif msg.type is WSMsgType.PONG:
                self.server.pongs_received += 1

    def cleanup(self) -> None:
        """Forget the connection once its handler ends."""
        self.server._drop(self)
        if self._close_timer:
            self._close_timer.cancel()
        if self._pinger:
            self._pinger.cancel()

    async def close(self, code: int = WSCloseCode.OK) -> None:
        """Close with a close frame; abort the transport if the peer does not answer in time."""
        self.server._drop(self)
        try:
            async with asyncio.timeout(2 * _CLOSE_TIMEOUT):
                await self.ws.close(code=code)
        except TimeoutError:
            self.transport.abort()

    async def deliver(self, text: str, index: int) -> None:
        """Send tape message `index` (pre-encoded as text), applying this connection's fault."""
        if not self.alive:
            return
        if self.fault is None:
            if await self._send(text):
                self.sent += 1
            return
        if self._stalled:
            return
        if self._skip_left:
            self._skip_left -= 1
            return
        if self.sent == self._garbage_at:
            self._garbage_at = None
            await self._send_garbage(text, index)
        if await self._send(text):
            self.sent += 1
            await self._after_sent()

    async def _after_sent(self) -> None:
        """Trigger the faults due after exactly `sent` data messages."""
        fault, sent = self.fault, self.sent
        assert fault is not None
        if fault.close_after == sent:
            self.server._drop(self)
            self.server._spawn(self._abort_when_flushed())
            return
        if fault.stall_after == sent:
            self._stalled = True
        if fault.shutdown_after == sent:
            await self._send_json({"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": _now_ms()}})
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(self.server.shutdown_grace, self._close_later)
        if fault.skip_after == sent:
            self._skip_left = fault.skip_count

    async def _abort_when_flushed(self) -> None:
        """Abort the transport (no close frame) once the frames already written have left."""
        transport = self.transport
        try:
            async with asyncio.timeout(_ABORT_FLUSH_TIMEOUT):
                while transport.get_write_buffer_size() and not transport.is_closing():
                    await asyncio.sleep(0.005)
        except TimeoutError:
            pass
        finally:
            transport.abort()

    def _close_later(self) -> None:
        """Close the connection some time after a serverShutdown notice, as Binance does."""
        self._close_timer = None
        self.server._spawn(self.close())

    async def _send_garbage(self, text: str, index: int) -> None:
        """Send the malformed frames of a garbage fault, built around the next real message."""
        message = self.server._messages[index]
        negative = orjson.dumps({**message, "data": {**message["data"], "p": "-1"}}).decode()
        for frame in ("not json", text[: len(text) // 2], _BINARY_GARBAGE, _MISSING_FIELDS, negative):
            send = self.ws.send_bytes(frame) if isinstance(frame, bytes) else self.ws.send_str(frame)
            if not await self._send_quietly(send):
                return

    async def _on_text(self, text: str) -> None:
        """Handle a text frame from the client: rate-limit it, then answer it as a control message."""
        if not self.alive:
            return
        now = time.monotonic()
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            request = _INVALID_JSON
        method = request.get("method") if isinstance(request, dict) else None
        if method in _CONTROL_METHODS:
            self.server.control_messages.append((now, self.number, request))
        if self._over_rate(now):
            self.server.control_rate_violations += 1
            await self.close(WSCloseCode.POLICY_VIOLATION)
        elif request is _INVALID_JSON:
            await self._send_json({"error": {"code": 3, "msg": "invalid JSON"}})
        else:
            await self._control(method, request)

    def _over_rate(self, now: float) -> bool:
        """Record a client message; True if more than the allowed number arrived within one second."""
        times = self._control_times
        while times and now - times[0] >= 1.0:
            times.popleft()
        times.append(now)
        return len(times) > self.server.max_control_per_second

    async def _control(self, method: str | None, request: Any) -> None:
        """Answer SUBSCRIBE, UNSUBSCRIBE or LIST_SUBSCRIPTIONS; anything else is an invalid request."""
        ident = request.get("id") if isinstance(request, dict) else None
        params = request.get("params") if isinstance(request, dict) else None
        valid_params = isinstance(params, list) and all(isinstance(p, str) for p in params)
        if method == "LIST_SUBSCRIPTIONS":
            await self._send_json({"result": list(self.streams), "id": ident})
        elif method == "UNSUBSCRIBE" and valid_params:
            self.server._unsubscribe(self, params)
            await self._send_json({"result": None, "id": ident})
        elif method == "SUBSCRIBE" and valid_params:
            if self.server._subscribe(self, params):
                await self._send_json({"result": None, "id": ident})
            else:
                await self._send_json({"error": {"code": 2, "msg": "too many streams"}, "id": ident})
                await self.close()
        else:
            await self._send_json({"error": {"code": 2, "msg": "Invalid request"}, "id": ident})

    async def _ping_every(self, interval: float) -> None:
        """Send a WebSocket PING every interval seconds while the socket lives."""
        while True:
            await asyncio.sleep(interval)
            if not await self._send_quietly(self.ws.ping()):
                return

    async def _send(self, text: str) -> bool:
        """Send a text frame; on a broken connection drop it and return False."""
        try:
            await self.ws.send_str(text)
        except ConnectionError:
            self.server._drop(self)
            return False
        return True

    async def _send_json(self, body: Any) -> None:
        """Send a JSON reply as a text frame."""
        await self._send(orjson.dumps(body).decode())

    async def _send_quietly(self, send: Coroutine[Any, Any, None]) -> bool:
        """Await a send; False (instead of an error) if the connection is gone."""
        try:
            await send
        except ConnectionError:
            return False
        return True


def _now_ms() -> int:
    """Wall-clock time in milliseconds, as Binance's E."""
    return time.time_ns() // 1_000_000


def _listing(symbol: str, status: str, market: str) -> Json:
    """One exchangeInfo symbol entry (the fields Binance documents for the market; filters left empty)."""
    quote = next((q for q in _QUOTE_ASSETS if symbol.endswith(q) and len(symbol) > len(q)), symbol[-4:])
    base = symbol.removesuffix(quote)
    if market == "usdm":
        return {"symbol": symbol, "pair": symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
                "onboardDate": 1569398400000, "status": status, "baseAsset": base, "quoteAsset": quote,
                "marginAsset": quote, "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8,
                "quotePrecision": 8, "underlyingType": "COIN", "settlePlan": 0, "triggerProtect": "0.0500",
                "filters": [], "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"]}
    return {"symbol": symbol, "status": status, "baseAsset": base, "baseAssetPrecision": 8, "quoteAsset": quote,
            "quotePrecision": 8, "quoteAssetPrecision": 8, "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": True,
            "ocoAllowed": True, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False, "filters": [],
            "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER"}


def _int_param(params: dict[str, str], name: str) -> int | None:
    """An optional integer query parameter; ValueError if it is not an integer."""
    value = params.get(name)
    return None if value is None else int(value)


class FakeBinance(LoopbackServer):
    """Fake Binance market-data server playing a tape of recorded combined-stream messages as a live market."""

    shutdown_timeout = 0.25

    def __init__(
        self,
        messages: list[Json],
        *,
        market: str = "spot",
        rest_history: dict[str, list[Json]] | None = None,
        rate: float | None = None,
        batch: int = 50,
        ping_interval: float | None = None,
        max_streams_per_connection: int | None = None,
        max_control_per_second: int | None = None,
        listed: dict[str, str] | None = None,
        clock_lag: float | None = None,
        open_interest: dict[str, list[Json]] | None = None,
    ) -> None:
        """rate: messages per second (None: as fast as possible); clock_lag: instead, a live market whose messages
        go out when the wall clock reaches their trade time plus this many seconds (a stream lagging by it);
        listed: exchangeInfo's symbols and their status (default: the tape's symbols, all TRADING); the stream
        and control-message limits default to the market's (spot 1024 and 5, USD-M 200 and 10). USD-M
        `open_interest`: per symbol, rows of /futures/data/openInterestHist (ascending timestamps); the current
        value (/fapi/v1/openInterest) is the newest row until set_open_interest() says otherwise."""
        super().__init__()
        if market not in _REST_PREFIX:
            raise ValueError(f"market must be one of {sorted(_REST_PREFIX)}, not {market!r}")
        self.market = market
        if max_streams_per_connection is None:
            max_streams_per_connection = _STREAMS_PER_CONNECTION[market]
        if max_control_per_second is None:
            max_control_per_second = _CONTROL_PER_SECOND[market]
        self._best_match = market == "spot"  # spot rows carry "M", USD-M rows do not
        self.rate = rate
        self.clock_lag = clock_lag
        self.batch = max(1, batch)
        self.ping_interval = ping_interval
        self.max_streams_per_connection = max_streams_per_connection
        self.max_control_per_second = max_control_per_second
        self.shutdown_grace = 2.0  # seconds between a serverShutdown notice and the close
        self.rest_refuse = False
        self.played = 0
        self.connections_accepted = 0
        self.handshakes_refused = 0
        self.rest_requests: list[dict[str, str]] = []
        self.control_messages: list[tuple[float, int, Json]] = []
        self.control_rate_violations = 0
        self.pongs_received = 0
        self._messages = messages
        self._texts = [orjson.dumps(message).decode() for message in messages]
        self._streams = [stream_key(message["stream"]) for message in messages]
        self._times = [message["data"].get("T", message["data"].get("E", 0)) for message in messages]
        self._history = self._build_history(rest_history or {})
        self.listed = listed if listed is not None else dict.fromkeys(sorted(self._history), "TRADING")
        self.exchange_info_requests = 0
        self.open_interest_history = open_interest or {}
        self._open_interest_now: dict[str, Json] = {}
        self.open_interest_requests: list[dict[str, str]] = []
        self._subscribers: dict[str, tuple[_Connection, ...]] = {}
        self._connections: set[_Connection] = set()
        self._faults: deque[ConnectionFault] = deque()
        self._refusals = 0
        self._rest_failures = 0
        self._rest_failure: tuple[int, int | None] = (429, 1)
        self._running = asyncio.Event()
        self._running.set()
        self._market: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def ws_url(self) -> str:
        """Base WebSocket URL; clients append /stream?streams=... (USD-M: /market/stream or /public/stream)."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        """Base REST URL."""
        return f"http://127.0.0.1:{self.port}"

    def build_app(self) -> web.Application:
        app = web.Application()
        prefix = _REST_PREFIX[self.market]
        app.router.add_get("/stream", self._handle_stream)
        if self.market == "usdm":
            for route in _USDM_ROUTES:
                app.router.add_get(f"/{route}/stream", functools.partial(self._handle_stream, route=route))
        app.router.add_get(f"{prefix}/aggTrades", self._handle_agg_trades)
        app.router.add_get(f"{prefix}/ping", self._handle_ping)
        app.router.add_get(f"{prefix}/exchangeInfo", self._handle_exchange_info)
        if self.market == "usdm":
            app.router.add_get("/fapi/v1/openInterest", self._handle_open_interest)
            app.router.add_get("/futures/data/openInterestHist", self._handle_open_interest_history)
        return app

    async def stop_work(self) -> None:
        """Stop the market and close every WebSocket (aborting backlogged ones)."""
        tasks = [*self._tasks, *([self._market] if self._market else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        connections = list(self._connections)
        for conn in connections:
            if conn.transport.get_write_buffer_size():
                # A backlogged peer would not read a close frame in time; worse, cancelling the market above
                # cancelled the drain future aiohttp shares between all writers of that connection.
                self._drop(conn)
                conn.transport.abort()
        await asyncio.gather(*(conn.close(WSCloseCode.GOING_AWAY) for conn in connections if conn.alive))

    def play(self) -> None:
        """Start the market (idempotent)."""
        if self._market is None:
            self._market = asyncio.get_running_loop().create_task(self._play())

    def pause(self) -> None:
        """Hold the market at the next batch boundary."""
        self._running.clear()

    def resume(self) -> None:
        """Let a paused market go on."""
        self._running.set()

    async def wait_played(self, timeout: float = 30) -> None:
        """Wait until every message of the tape has been played."""
        if self._market is None:
            raise RuntimeError("play() was not called")
        await asyncio.wait_for(asyncio.shield(self._market), timeout)

    def add_connection_faults(self, *faults: ConnectionFault) -> None:
        """Give the next accepted WebSocket connections these faults, one each, in order."""
        self._faults.extend(faults)

    def refuse_connections(self, n: int) -> None:
        """Answer the next n WebSocket handshakes with HTTP 503."""
        self._refusals += n

    def rest_fail(self, n: int, status: int = 429, retry_after: int | None = 1) -> None:
        """Answer the next n REST aggTrades requests with `status` (and Retry-After unless None)."""
        self._rest_failures = n
        self._rest_failure = (status, retry_after)

    def open_connections(self) -> int:
        """WebSocket connections currently open (not closed, aborted or closing)."""
        return len(self._connections)

    def streams_per_connection(self) -> list[int]:
        """How many streams each open WebSocket connection is subscribed to, sorted."""
        return sorted(len(conn.streams) for conn in self._connections)

    def aggtrade_history(self, symbol: str) -> list[Json]:
        """The full REST history of a symbol, played or not, ascending by id."""
        history = self._history.get(symbol)
        return [_rest_row(event, self._best_match) for event in history.events] if history else []

    def _build_history(self, rest_history: dict[str, list[Json]]) -> dict[str, _History]:
        """REST history per symbol: the tape's aggTrades, or merged from its @trade events, or as given."""
        aggregated: dict[str, list[tuple[int, Json]]] = {}
        trades: dict[str, list[tuple[int, Json]]] = {}
        for index, message in enumerate(self._messages):
            data = message["data"]
            if data.get("e") == "aggTrade":
                aggregated.setdefault(data["s"], []).append((index, data))
            elif data.get("e") == "trade":
                trades.setdefault(data["s"], []).append((index, data))
        entries = {symbol: _merge_trades(items) for symbol, items in trades.items()}
        entries.update(aggregated)
        if rest_history:
            entries.update(_place_history(self._messages, rest_history))
        return {symbol: _History(items) for symbol, items in entries.items()}

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a background task that close() cancels."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _subscribe(self, conn: _Connection, streams: list[str]) -> bool:
        """Add streams to a connection; False (and no change) if it would exceed the stream limit."""
        new = [key for key in dict.fromkeys(map(stream_key, streams)) if key not in conn.streams]
        if len(conn.streams) + len(new) > self.max_streams_per_connection:
            return False
        for key in new:
            conn.streams[key] = None  # listed, but sent only where its route serves it
            if served_on(self.market, conn.route, key):
                self._subscribers[key] = (*self._subscribers.get(key, ()), conn)
        return True

    def _unsubscribe(self, conn: _Connection, streams: list[str]) -> None:
        """Remove streams from a connection."""
        for key in map(stream_key, streams):
            if key in conn.streams:
                del conn.streams[key]
                others = tuple(c for c in self._subscribers.get(key, ()) if c is not conn)
                if others:
                    self._subscribers[key] = others
                else:
                    self._subscribers.pop(key, None)

    def _drop(self, conn: _Connection) -> None:
        """Stop sending to a connection that is closing or gone."""
        if conn.alive:
            conn.alive = False
            self._connections.discard(conn)
            self._unsubscribe(conn, list(conn.streams))

    async def _play(self) -> None:
        """The market: broadcast each tape message, in batches, to the connections subscribed to it."""
        texts, streams, subscribers = self._texts, self._streams, self._subscribers
        total = len(texts)
        loop = asyncio.get_running_loop()
        started, start_index = loop.time(), 0
        while self.played < total:
            if self.clock_lag is not None:
                await asyncio.sleep(max(0.0, self._times[self.played] / 1000 + self.clock_lag - time.time()))
            elif self.rate:
                await asyncio.sleep(max(0.0, started + (self.played - start_index) / self.rate - loop.time()))
            else:
                await asyncio.sleep(0)
            if not self._running.is_set():
                await self._running.wait()
                started, start_index = loop.time(), self.played
            for index in range(self.played, min(self.played + self.batch, total)):
                if self.clock_lag is not None and self._times[index] / 1000 + self.clock_lag > time.time():
                    break
                targets = subscribers.get(streams[index])
                if targets:
                    text = texts[index]
                    for conn in targets:
                        await conn.deliver(text, index)
                self.played = index + 1

    async def _handle_stream(self, request: web.Request, route: str | None = None) -> web.StreamResponse:
        """GET [/route]/stream?streams=a/b: a combined-stream WebSocket (or HTTP 503 while refusing)."""
        if self._refusals:
            self._refusals -= 1
            self.handshakes_refused += 1
            return web.Response(status=503, text="Service Unavailable")
        ws = web.WebSocketResponse(timeout=_CLOSE_TIMEOUT, autoping=False, compress=False)
        await ws.prepare(request)
        transport = request.transport
        if transport is None:
            return ws
        self.connections_accepted += 1
        fault = self._faults.popleft() if self._faults else None
        conn = _Connection(self, self.connections_accepted, ws, transport, fault, route)
        self._connections.add(conn)
        try:
            await conn.run([stream for stream in request.query.get("streams", "").split("/") if stream])
        finally:
            conn.cleanup()
        return ws

    def set_open_interest(self, symbol: str, open_interest: str, time_ms: int) -> None:
        """What GET /fapi/v1/openInterest answers for the symbol from now on."""
        self._open_interest_now[symbol] = {"openInterest": open_interest, "symbol": symbol, "time": time_ms}

    async def _handle_open_interest(self, request: web.Request) -> web.Response:
        """GET /fapi/v1/openInterest?symbol=: {"openInterest","symbol","time"}, as Binance documents it."""
        params = dict(request.query)
        self.open_interest_requests.append({"path": request.path, **params})
        symbol = params.get("symbol")
        if symbol is None:
            return _json_response({"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent."}, 400)
        current = self._open_interest_now.get(symbol)
        rows = self.open_interest_history.get(symbol)
        if current is None and rows:
            current = {"openInterest": rows[-1]["sumOpenInterest"], "symbol": symbol, "time": rows[-1]["timestamp"]}
        if current is None:
            return _json_response({"code": -1121, "msg": "Invalid symbol."}, 400)
        return _json_response(current)

    async def _handle_open_interest_history(self, request: web.Request) -> web.Response:
        """GET /futures/data/openInterestHist?symbol=&period=&limit=&startTime=&endTime=: ascending rows, the most
        recent `limit` (default 30, at most 500) of those in the time range."""
        params = dict(request.query)
        self.open_interest_requests.append({"path": request.path, **params})
        if "symbol" not in params or params.get("period") not in ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h",
                                                                   "1d"):
            return _json_response({"code": -1102, "msg": "Mandatory parameter 'symbol' or 'period' was not sent."},
                                  400)
        try:
            start, end, limit = (_int_param(params, name) for name in ("startTime", "endTime", "limit"))
        except ValueError:
            return _json_response({"code": -1100, "msg": "Illegal characters found in a parameter."}, 400)
        rows = [row for row in self.open_interest_history.get(params["symbol"], [])
                if (start is None or row["timestamp"] >= start) and (end is None or row["timestamp"] <= end)]
        limit = 30 if limit is None else min(max(limit, 1), 500)
        return _json_response(rows[-limit:])

    async def _handle_ping(self, request: web.Request) -> web.Response:
        """GET .../ping: {}."""
        return _json_response({})

    async def _handle_exchange_info(self, request: web.Request) -> web.Response:
        """GET .../exchangeInfo: the listed symbols, shaped as Binance's documents them for the market."""
        self.exchange_info_requests += 1
        body: Json = {"timezone": "UTC", "serverTime": _now_ms(), "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}],
            "exchangeFilters": []}
        if self.market == "usdm":
            body |= {"futuresType": "U_MARGINED", "assets": []}
        body["symbols"] = [_listing(symbol, status, self.market) for symbol, status in self.listed.items()]
        return _json_response(body)

    async def _handle_agg_trades(self, request: web.Request) -> web.Response:
        """GET .../aggTrades: the played aggTrades of a symbol, like Binance's REST endpoint."""
        params = dict(request.query)
        self.rest_requests.append(params)
        if self.rest_refuse:
            return _json_response({"code": -1001, "msg": "Internal error; unable to process your request."}, 503)
        if self._rest_failures:
            self._rest_failures -= 1
            status, retry_after = self._rest_failure
            headers = None if retry_after is None else {"Retry-After": str(retry_after)}
            return _json_response({"code": -1003, "msg": "Too many requests"}, status, headers)
        if "symbol" not in params:
            return _json_response({"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent."}, 400)
        history = self._history.get(params["symbol"])
        if history is None:
            return _json_response({"code": -1121, "msg": "Invalid symbol."}, 400)
        try:
            from_id, start, end, limit = (_int_param(params, name) for name in _QUERY_INTS)
        except ValueError:
            return _json_response({"code": -1100, "msg": "Illegal characters found in a parameter."}, 400)
        if from_id is not None and (start is not None or end is not None):
            return _json_response({"code": -1128, "msg": "Combination of optional parameters invalid."}, 400)
        limit = 500 if limit is None else min(max(limit, 1), 1000)
        events = history.query(self.played, from_id, start, end, limit)
        return _json_response([_rest_row(event, self._best_match) for event in events])

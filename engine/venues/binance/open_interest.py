"""USD-M open interest over REST: the recent 5-minute history at start, then each symbol polled at an interval."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from core.futures import OpenInterest
from core.trades import parse_scaled
from engine.venues.binance.messages import InvalidMessage
from engine.venues.binance.rest import BinanceRest, RestError

log = logging.getLogger(__name__)

CURRENT_PATH = "/fapi/v1/openInterest"  # weight 1
HISTORY_PATH = "/futures/data/openInterestHist"  # Binance keeps the last 30 days
HISTORY_PERIOD = "5m"
HISTORY_LIMIT = 500  # rows per request (Binance's most): about 41 hours of 5-minute values
HISTORY_DAYS = 30  # all that Binance keeps
HISTORY_PAGE_MS = HISTORY_LIMIT * 300_000
HISTORY_PACE_S = 0.5  # openInterestHist allows 1,000 requests per 5 minutes per IP: older pages at 600 at most

OpenInterestSink = Callable[[str, list[OpenInterest]], None]


def _value(text: Any, symbol: Any, ms: Any) -> OpenInterest:
    if not (type(text) is str and type(symbol) is str and type(ms) is int):
        raise InvalidMessage("wrong_type", f"{type(text).__name__},{type(symbol).__name__},{type(ms).__name__}")
    value = parse_scaled(text)
    if value is None:
        raise InvalidMessage("bad_decimal", repr(text))
    return OpenInterest(symbol, value, ms)


def open_interest_from_rest(body: dict[str, Any]) -> OpenInterest:
    """GET /fapi/v1/openInterest's {"openInterest","symbol","time"}."""
    return _value(body.get("openInterest"), body.get("symbol"), body.get("time"))


def open_interest_from_history(row: Any) -> OpenInterest:
    """A row of GET /futures/data/openInterestHist: {"symbol","sumOpenInterest","sumOpenInterestValue","timestamp"}."""
    if type(row) is not dict:
        raise InvalidMessage("not_an_object")
    return _value(row.get("sumOpenInterest"), row.get("symbol"), row.get("timestamp"))


class OpenInterestPoller:
    """Feeds `sink` each symbol's open interest: history first, then one request per symbol per `interval`, spread
    evenly (400 symbols every 30 s is about 13 requests a second: weight 800 a minute of the 2,400 allowed)."""

    def __init__(self, rest: BinanceRest, symbols: Sequence[str], interval: float, sink: OpenInterestSink, *,
                 history_pace: float = HISTORY_PACE_S) -> None:
        self.rest = rest
        self.symbols = list(symbols)
        self.interval = interval
        self.sink = sink
        self.history_pace = history_pace
        self.failures = 0

    async def run(self) -> None:
        """Until cancelled: each symbol's latest page of history (the context at once), then the polls, while the
        older pages of the last 30 days follow behind them, paced."""
        oldest: dict[str, tuple[int, int]] = {}  # symbol -> (oldest time delivered, newest)
        for symbol in self.symbols:
            got = await self._history(symbol, {})
            if got:
                oldest[symbol] = (got[0].time, got[-1].time)
        older = asyncio.create_task(self._older_history(oldest), name="open-interest-history")
        try:
            await self._poll()
        finally:
            older.cancel()
            await asyncio.gather(older, return_exceptions=True)

    async def _poll(self) -> None:
        pause = self.interval / max(1, len(self.symbols))
        while True:
            for symbol in self.symbols:
                body = await self._get(CURRENT_PATH, {"symbol": symbol}, dict)
                if body is not None:
                    self._deliver(symbol, [body], open_interest_from_rest)
                await asyncio.sleep(pause)

    async def _older_history(self, oldest: dict[str, tuple[int, int]]) -> None:
        """Page back to 30 days before each symbol's newest value, a page of 500 rows per request."""
        for symbol, (first, newest) in oldest.items():
            since, end = newest - HISTORY_DAYS * 86_400_000, first - 1
            while end > since:
                await asyncio.sleep(self.history_pace)
                got = await self._history(symbol, {"startTime": str(max(since, end - HISTORY_PAGE_MS + 1)),
                                                   "endTime": str(end)})
                if not got:
                    break
                end = got[0].time - 1

    async def _history(self, symbol: str, window: dict[str, str]) -> list[OpenInterest]:
        rows = await self._get(HISTORY_PATH, {"symbol": symbol, "period": HISTORY_PERIOD,
                                              "limit": str(HISTORY_LIMIT), **window}, list)
        return self._deliver(symbol, rows or [], open_interest_from_history)

    async def _get(self, path: str, params: dict[str, str], shape: type) -> Any:
        try:
            return await self.rest.get(self.rest.base_url + path, params, shape)
        except RestError as exc:
            self.failures += 1
            log.warning("open interest of %s: %s", params["symbol"], exc)
            return None

    def _deliver(self, symbol: str, rows: list[Any], parse: Callable[[Any], OpenInterest]) -> list[OpenInterest]:
        values = []
        for row in rows:
            try:
                value = parse(row)
            except InvalidMessage as exc:
                self.failures += 1
                log.warning("open interest of %s: %s in %r", symbol, exc, row)
                continue
            if value.symbol == symbol:
                values.append(value)
        values.sort(key=lambda v: v.time)
        if values:
            self.sink(symbol, values)
        return values

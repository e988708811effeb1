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
HISTORY_LIMIT = 500  # about 41 hours of 5-minute values: more than the context's hour, in one request per symbol

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

    def __init__(self, rest: BinanceRest, symbols: Sequence[str], interval: float, sink: OpenInterestSink) -> None:
        self.rest = rest
        self.symbols = list(symbols)
        self.interval = interval
        self.sink = sink
        self.failures = 0

    async def run(self) -> None:
        """Until cancelled."""
        for symbol in self.symbols:
            rows = await self._get(HISTORY_PATH, {"symbol": symbol, "period": HISTORY_PERIOD,
                                                  "limit": str(HISTORY_LIMIT)}, list)
            self._deliver(symbol, rows or [], open_interest_from_history)
        pause = self.interval / max(1, len(self.symbols))
        while True:
            for symbol in self.symbols:
                body = await self._get(CURRENT_PATH, {"symbol": symbol}, dict)
                if body is not None:
                    self._deliver(symbol, [body], open_interest_from_rest)
                await asyncio.sleep(pause)

    async def _get(self, path: str, params: dict[str, str], shape: type) -> Any:
        try:
            return await self.rest.get(self.rest.base_url + path, params, shape)
        except RestError as exc:
            self.failures += 1
            log.warning("open interest of %s: %s", params["symbol"], exc)
            return None

    def _deliver(self, symbol: str, rows: list[Any], parse: Callable[[Any], OpenInterest]) -> None:
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
        if values:
            self.sink(symbol, values)

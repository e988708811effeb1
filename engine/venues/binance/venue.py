"""Binance (spot or USD-M, aggTrade or trade stream) as a venue of the generic feed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson

from core.settings import Market, StreamKind
from engine.connection.validator import TradeValidator
from engine.venues.base import Frame, Rejection, ShutdownNotice
from engine.venues.binance import streams
from engine.venues.binance.backfill import BinanceBackfiller
from engine.venues.binance.exchange_info import fetch_trading_symbols
from engine.venues.binance.messages import (
    SERVER_SHUTDOWN,
    InvalidMessage,
    liquidation_from_force_order,
    mark_from_mark_price_update,
    trade_from_aggtrade,
    trade_from_trade,
    unwrap,
)
from engine.venues.binance.rest import BinanceRest
from engine.venues.binance.rules import binance_validator

_SHUTDOWN = ShutdownNotice(f"Binance announced {SERVER_SHUTDOWN}")
_FUTURES_STREAMS = ("forceOrder", "markPrice@1s")  # USD-M only: liquidation orders, mark price and funding
ALL_LIQUIDATIONS = "!forceOrder@arr"  # every USD-M symbol's liquidation orders on one stream
_LIQUIDATION, _MARK = "forceOrder", "markPriceUpdate"


class BinanceVenue:
    """One Binance market and stream kind: its streams, frames, limits and REST backfill."""

    def __init__(self, market: Market, stream: StreamKind, *, all_liquidations: bool = False) -> None:
        self.market = market
        self.all_liquidations = all_liquidations and market is Market.USDM  # !forceOrder@arr, not one per symbol
        self.limits = streams.LIMITS[market]
        self.stream = stream
        self.name = market.value
        self.by_trade_ids = stream is StreamKind.TRADE
        self._kind = stream.value
        self._parse = trade_from_trade if self.by_trade_ids else trade_from_aggtrade

    def stream_names(self, symbols: Sequence[str]) -> list[str]:
        kinds: tuple[str, ...] = (self._kind,)
        if self.market is Market.USDM:
            kinds = (self._kind, *(k for k in _FUTURES_STREAMS if not (self.all_liquidations and k == "forceOrder")))
        names = [streams.stream_name(symbol, kind) for symbol in symbols for kind in kinds]
        return [*names, ALL_LIQUIDATIONS] if self.all_liquidations and symbols else names

    def symbol_of(self, stream: str) -> str:
        """The symbol of a stream; "" for a market-wide one (!forceOrder@arr)."""
        return "" if stream.startswith("!") else streams.symbol_of(stream)

    def connection_url(self, ws_url: str, stream_names: Sequence[str]) -> str:
        return streams.connection_url(self.market, ws_url, stream_names)

    def subscribe_requests(self, stream_names: Sequence[str]) -> list[str]:
        return streams.subscribe_requests(stream_names)

    async def trading_symbols(self, session: aiohttp.ClientSession, rest_url: str) -> list[str]:
        return await fetch_trading_symbols(session, rest_url, self.market)

    def decode(self, text: str) -> Frame:
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            return Rejection("malformed_json", repr(text[:80]))
        try:
            data = message["data"]
            kind = data["e"]
        except (KeyError, TypeError, IndexError):
            if not (isinstance(message, dict) and "e" in message and "data" not in message):
                return _not_an_event(message)
            data = message  # a bare event, without the combined-stream wrapper
            kind = data["e"]
        try:
            if kind == self._kind:
                return self._parse(data)
            if kind == _LIQUIDATION and self.market is Market.USDM:
                return liquidation_from_force_order(data)
            if kind == _MARK and self.market is Market.USDM:
                return mark_from_mark_price_update(data)
        except InvalidMessage as exc:
            return Rejection(exc.reason, str(exc))
        return _SHUTDOWN if kind == SERVER_SHUTDOWN else Rejection("unexpected_event", repr(kind))

    def validator(self, *, max_clock_skew: float, rejected: Counter[str]) -> TradeValidator:
        return binance_validator(live=True, max_clock_skew=max_clock_skew, rejected=rejected)

    def backfiller(
        self, session: aiohttp.ClientSession, rest_url: str, validator: TradeValidator, *, max_attempts: int
    ) -> BinanceBackfiller:
        rest = BinanceRest(session, rest_url, self.market, max_attempts=max_attempts)
        return BinanceBackfiller(rest, validator, by_trade_ids=self.by_trade_ids)


def _not_an_event(message: Any) -> Rejection | None:
    """What to do with a message that is not an event: a subscribe reply is ignored, the rest rejected."""
    if isinstance(message, dict):
        if "result" in message and "id" in message:
            return None  # the reply to a subscribe request
        if "error" in message:
            error = message["error"]
            return Rejection("server_error_message", repr(error), f"Binance error {error}")
    try:
        unwrap(message)
    except InvalidMessage as exc:
        return Rejection(exc.reason, repr(message)[:80])
    return Rejection("missing_field", repr(message)[:80])

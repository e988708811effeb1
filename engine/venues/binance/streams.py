"""Binance stream names, connection URLs per market, subscribe requests and limits: the one place for routing."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from core.settings import Market
from engine.venues.base import VenueLimits

STREAMS_IN_URL = 100  # the rest are added with SUBSCRIBE, keeping the URL short
STREAMS_PER_SUBSCRIBE = 200

# Binance's limits per connection, by market (closing a connection that breaks them), with margin where it is a rate.
LIMITS: dict[Market, VenueLimits] = {
    Market.SPOT: VenueLimits(
        streams_per_connection=1024,
        control_messages_per_second=4.0,  # spot closes a connection that sends more than 5 a second
        connections_per_period=100,  # spot allows 300 new connections per 5 minutes per IP
        connection_period=300.0,
    ),
    Market.USDM: VenueLimits(
        streams_per_connection=200,
        control_messages_per_second=8.0,  # USD-M allows 10 incoming messages a second
        connections_per_period=100,
        connection_period=300.0,
    ),
}


# USD-M serves each stream on one routed path of the base URL ("Important WebSocket Change Notice"): high-frequency
# book data on /public, regular market data on /market, user data on /private. A connection without a route gets
# only the public streams. These are the public ones (by the event part of the name); every other stream is /market.
PUBLIC_ROUTE, MARKET_ROUTE = "public", "market"
ROUTES = (PUBLIC_ROUTE, MARKET_ROUTE, "private")
_PUBLIC_EVENTS = ("bookTicker", "depth")


def stream_name(symbol: str, kind: str) -> str:
    """Binance stream name, e.g. btcusdt@aggTrade."""
    return f"{symbol.lower()}@{kind}"


def symbol_of(stream: str) -> str:
    """The symbol of a stream name: btcusdt@aggTrade -> BTCUSDT."""
    return stream.split("@")[0].upper()


def usdm_route(stream: str) -> str:
    """The USD-M route of a stream: public for book tickers and depth, market for the rest (!forceOrder@arr too)."""
    event = stream.partition("@")[2]
    return PUBLIC_ROUTE if event.startswith(_PUBLIC_EVENTS) else MARKET_ROUTE


def connection_url(market: Market, ws_url: str, streams: Sequence[str]) -> str:
    """The combined-stream URL of a connection: spot at <base>/stream, USD-M at <base>/<route>/stream."""
    base = ws_url.rstrip("/")
    if market is Market.SPOT:
        return f"{base}/stream?streams=" + "/".join(streams[:STREAMS_IN_URL])
    routes = {usdm_route(stream) for stream in streams}
    if len(routes) > 1:
        raise ValueError(f"one USD-M connection serves one route, these streams need {sorted(routes)}")
    route = routes.pop() if routes else MARKET_ROUTE
    for known in ROUTES:  # a base given with a route already (wss://fstream.binance.com/market) is taken as the base
        base = base.removesuffix(f"/{known}")
    return f"{base}/{route}/stream?streams=" + "/".join(streams[:STREAMS_IN_URL])


def subscribe_requests(streams: Sequence[str]) -> list[str]:
    """SUBSCRIBE requests (ids 1, 2, ...) for the streams past those in the URL."""
    extra = list(streams[STREAMS_IN_URL:])
    return [
        orjson.dumps({"method": "SUBSCRIBE", "params": extra[start : start + STREAMS_PER_SUBSCRIBE], "id": number})
        .decode()
        for number, start in enumerate(range(0, len(extra), STREAMS_PER_SUBSCRIBE), 1)
    ]

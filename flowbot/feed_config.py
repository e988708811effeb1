"""The live feed's venue and config, built from Settings: only the composition root reads the whole of it."""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from core.settings import Settings
from engine.bus import EventBus
from engine.connection.config import FeedConfig
from engine.connection.feed import MarketFeed
from engine.connection.pacing import backoff_delay
from engine.connection.supervisor import SupervisorPolicy
from engine.venues.binance.exchange_info import ExchangeInfoError
from engine.venues.binance.venue import BinanceVenue

log = logging.getLogger(__name__)


def venue_from(settings: Settings) -> BinanceVenue:
    """The venue of MARKET and STREAM."""
    return BinanceVenue(settings.market, settings.stream, all_liquidations=settings.liquidation_stream == "all")


def feed_config(settings: Settings, symbols: list[str] | None = None) -> FeedConfig:
    """The feed of `symbols` (default: SYMBOLS) with the endpoints and timings of `settings`."""
    return FeedConfig(
        ws_url=settings.ws_url,
        rest_url=settings.rest_url,
        symbols=tuple(symbols or settings.symbols),
        ping_interval=settings.ws_ping_interval,
        health_report_interval=settings.health_check_interval,
        supervisor=SupervisorPolicy(
            health_check_interval=settings.health_check_interval,
            stall_timeout=settings.ws_stall_timeout,
            rotate_after=settings.ws_rotate_after,
            rotation_overlap=settings.ws_rotation_overlap,
            max_failures=settings.ws_max_reconnect_attempts,
            base_delay=settings.ws_reconnect_base_delay,
            max_delay=settings.ws_reconnect_max_delay,
        ),
        gap_grace=settings.gap_grace,
        rest_max_attempts=settings.rest_max_attempts,
        max_clock_skew=settings.max_clock_skew,
    )


def make_feed(settings: Settings, bus: EventBus, *, symbols: list[str] | None = None) -> MarketFeed:
    """The live feed of `settings`' venue."""
    return MarketFeed(venue_from(settings), feed_config(settings, symbols), bus)


async def resolve_symbols(settings: Settings) -> Settings:
    """SYMBOLS=ALL: the settings with SYMBOLS set to every symbol MARKET trades now (the venue's list, asked again with
    backoff until it answers), so that shards, bots and dashboard all follow that list; other settings as they are."""
    if not settings.all_symbols:
        return settings
    venue = venue_from(settings)
    failures = 0
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                symbols = await venue.trading_symbols(session, settings.rest_url)
                if symbols:
                    break
                problem = "it lists no trading symbol"
            except ExchangeInfoError as exc:
                problem = str(exc)
            failures += 1
            log.warning("SYMBOLS=ALL: cannot list the %s symbols from %s (%d failures in a row): %s; retrying",
                        settings.market.value, settings.rest_url, failures, problem)
            await asyncio.sleep(
                backoff_delay(failures, settings.ws_reconnect_base_delay, settings.ws_reconnect_max_delay)
            )
    log.info("SYMBOLS=ALL: %d %s symbols trading", len(symbols), settings.market.value)
    return settings.model_copy(update={"symbols": symbols, "liquidation_stream": settings.liquidation_stream or "all"})

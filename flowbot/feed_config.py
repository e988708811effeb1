"""The live feed's venue and config, built from Settings: only the composition root reads the whole of it."""

from __future__ import annotations

from core.settings import Settings
from engine.bus import EventBus
from engine.connection.config import FeedConfig
from engine.connection.feed import MarketFeed
from engine.connection.supervisor import SupervisorPolicy
from engine.venues.binance.venue import BinanceVenue


def venue_from(settings: Settings) -> BinanceVenue:
    """The venue of MARKET and STREAM."""
    return BinanceVenue(settings.market, settings.stream)


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

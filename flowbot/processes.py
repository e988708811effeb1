"""The long-running processes: `flowbot run` (everything on one bus), `flowbot engine` (a shard) and `flowbot bot`
(the analyst and the bots). The bot side and the dashboard, with their SDKs, are imported only by the processes
that run them, so an engine shard never loads them."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from core.events import FeedHealthReport, WindowClosed
from core.health_server import all_ready, feed_ready, serving_health, started_ready, store_ready
from core.metrics import Metrics
from core.settings import Settings
from core.store_health import StoreHealth
from engine.bus_factory import make_bus
from engine.mirror import BusMirror
from flowbot.compose import Engine
from flowbot.feed_config import resolve_symbols
from flowbot.store_watch import watch_stores
from storage.signal_store import SignalStore


async def run_all(settings: Settings) -> None:
    """`flowbot run`: engine, bus, store, analyst, bots and dashboard in one process."""
    from dashboard.app import Dashboard
    from flowbot.bot_side import BotSide
    from flowbot.dashboard_config import dashboard_config

    settings = await resolve_symbols(settings)
    bus = make_bus(settings.bus_url, settings.bus_queue_size)
    metrics = Metrics()
    store_health = StoreHealth()
    signal_store = SignalStore(Path(settings.data_dir) / "flowbot.db", health=store_health)
    engine = Engine(settings, bus, symbols=settings.symbols, signal_store=signal_store, metrics=metrics,
                    store_health=store_health)
    bots = BotSide(settings, bus, signal_store=signal_store, contexts=engine.pipeline.contexts.get,
                   feed_health=engine.feed.health.snapshot, metrics=metrics)
    dashboard = Dashboard(dashboard_config(settings), bus, store=engine.store,
                          signal_db_path=Path(settings.data_dir) / "flowbot.db",
                          feed_health=engine.feed.health.snapshot, contexts=engine.pipeline.contexts)
    ready = all_ready(feed_ready(engine.feed.health, settings), bots.ready, store_ready(store_health))
    _announce(settings, engine.feed.symbols)
    _settle()
    try:
        async with serving_health(settings, metrics, ready, dashboard.routes()):
            await _until_first_ends(engine.run(), bots.run(), dashboard.run())
    finally:
        dashboard.close()
        signal_store.close()
        await bus.close()


def _settle() -> None:
    """Everything loaded at start (modules, settings, every user's alert rules) lives as long as the process:
    keep it out of the garbage collector's scans, which otherwise grow with it and slow every later batch."""
    gc.collect()
    gc.freeze()


async def run_engine(settings: Settings) -> None:
    """`flowbot engine`: one shard of the symbols, publishing on the bus."""
    settings = await resolve_symbols(settings)
    bus = make_bus(settings.bus_url, settings.bus_queue_size)
    metrics = Metrics()
    engine = Engine(settings, bus, symbols=settings.shard_symbols, signal_store=None, metrics=metrics)
    _announce(settings, engine.feed.symbols)
    _settle()
    try:
        ready = all_ready(feed_ready(engine.feed.health, settings), store_ready(engine.store_health))
        async with serving_health(settings, metrics, ready):
            await engine.run()
    finally:
        await bus.close()


async def run_bots(settings: Settings) -> None:
    """`flowbot bot`: the analyst and the bots, consuming the engine shards' events from the bus."""
    from flowbot.bot_side import BotSide

    settings = await resolve_symbols(settings)
    bus = make_bus(settings.bus_url, settings.bus_queue_size)
    metrics = Metrics()
    store_health = StoreHealth()
    metrics.watch_stores(store_health)
    signal_store = SignalStore(Path(settings.data_dir) / "flowbot.db", health=store_health)
    mirror = BusMirror()
    following = bus.subscribe(  # every bot replica needs every window: a group of its own
        WindowClosed, FeedHealthReport, name=f"bot-mirror-{socket.gethostname()}", maxsize=100_000
    )
    bots = BotSide(settings, bus, signal_store=signal_store, contexts=mirror.contexts.get,
                   feed_health=mirror.feed_health, metrics=metrics)
    print(f"flowbot: bots for {_listed(settings.symbols)} on {_bus_name(settings)}; Ctrl-C stops", flush=True)
    _settle()
    try:
        ready = all_ready(bots.ready, store_ready(store_health))
        async with serving_health(settings, metrics, ready):
            await _until_first_ends(mirror.follow(following), bots.run(), watch_stores(store_health, bus))
    finally:
        signal_store.close()
        await bus.close()


async def run_dashboard(settings: Settings) -> None:
    """`flowbot dashboard`: the dashboard alone on HEALTH_HOST:HEALTH_PORT, following the engines on BUS_URL."""
    from dashboard.app import Dashboard
    from flowbot.dashboard_config import dashboard_config
    from storage.feature_store import FeatureStore

    settings = await resolve_symbols(settings)
    bus = make_bus(settings.bus_url, settings.bus_queue_size)
    data_dir = Path(settings.data_dir)
    dashboard = Dashboard(dashboard_config(settings), bus, store=FeatureStore(data_dir),
                          signal_db_path=data_dir / "flowbot.db")
    try:
        async with serving_health(settings, Metrics(), started_ready("dashboard", dashboard.ready),
                                  dashboard.routes()) as server:
            access = "token required" if dashboard.auth.required else "no DASHBOARD_TOKEN: open"
            print(f"flowbot: dashboard on http://{settings.health_host}:{server.port}/ ({access}); Ctrl-C stops",
                  flush=True)
            await dashboard.run()
    finally:
        dashboard.close()
        await bus.close()


def _announce(settings: Settings, symbols: list[str]) -> None:
    print(
        f"flowbot: streaming {_listed(symbols)} ({settings.market.value} {settings.stream.value}) "
        f"from {settings.ws_url}; Ctrl-C stops",
        flush=True,
    )


def _listed(symbols: list[str], most: int = 20) -> str:
    """The symbols by name, or how many there are when that would be a wall of names (SYMBOLS=ALL)."""
    return ", ".join(symbols) if len(symbols) <= most else f"{len(symbols)} symbols ({', '.join(symbols[:3])}, ...)"


def _bus_name(settings: Settings) -> str:
    return "the in-process bus" if settings.bus_url.startswith("memory") else "Redis Streams"


async def _until_first_ends(*parts: Coroutine[Any, Any, None]) -> None:
    """Run the parts together; when one ends (or fails, or all are cancelled) the others stop in order."""
    tasks = [asyncio.create_task(part) for part in parts]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in reversed(tasks):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

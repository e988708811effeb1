"""The `flowbot` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ai.ask import Asker
from ai.providers import ProviderChain, providers_from
from core.events import FeedHealthReport, WindowClosed
from core.health_server import HealthPortError, all_ready, feed_ready, serving_health, started_ready
from core.logs import configure_logging
from core.metrics import Metrics
from core.settings import Settings
from dashboard.app import Dashboard, run_dashboard
from engine.bus_factory import make_bus
from engine.mirror import BusMirror
from flowbot.compose import BotSide, Engine
from flowbot.doctor import doctor
from flowbot.replay import replay
from presentation.flow_text import format_flow
from storage.feature_store import FeatureStore
from storage.flow_query import FLOW_SPANS_MS, flow_report
from storage.signal_store import SignalStore


async def run_all(settings: Settings) -> None:
    """`flowbot run`: engine, bus, store, analyst and bots in one process."""
    bus = make_bus(settings.bus_url, settings.bus_queue_size)
    metrics = Metrics()
    signal_store = SignalStore(Path(settings.data_dir) / "flowbot.db")
    engine = Engine(settings, bus, symbols=settings.symbols, signal_store=signal_store, metrics=metrics)
    bots = BotSide(settings, bus, signal_store=signal_store, contexts=engine.pipeline.contexts.get,
                   feed_health=engine.feed.health.snapshot, metrics=metrics)
    dashboard = Dashboard(settings, bus, store=engine.store, signal_db_path=Path(settings.data_dir) / "flowbot.db",
                          feed_health=engine.feed.health.snapshot)
    ready = all_ready(feed_ready(engine.feed.health, settings), started_ready("bots", bots.started))
    _announce(settings, engine.feed.symbols)
    try:
        async with serving_health(settings, metrics, ready, dashboard.routes()):
            await _until_first_ends(engine.run(), bots.run(), dashboard.run())
    finally:
        dashboard.close()
        signal_store.close()
        await bus.close()


async def run_engine(settings: Settings) -> None:
    """`flowbot engine`: one shard of the symbols, publishing on the bus."""
    bus = make_bus(settings.bus_url, settings.bus_queue_size)
    metrics = Metrics()
    engine = Engine(settings, bus, symbols=settings.shard_symbols, signal_store=None, metrics=metrics)
    _announce(settings, engine.feed.symbols)
    try:
        async with serving_health(settings, metrics, feed_ready(engine.feed.health, settings)):
            await engine.run()
    finally:
        await bus.close()


async def run_bots(settings: Settings) -> None:
    """`flowbot bot`: the analyst and the bots, consuming the engine shards' events from the bus."""
    bus = make_bus(settings.bus_url, settings.bus_queue_size)
    metrics = Metrics()
    signal_store = SignalStore(Path(settings.data_dir) / "flowbot.db")
    mirror = BusMirror()
    following = bus.subscribe(  # every bot replica needs every window: a group of its own
        WindowClosed, FeedHealthReport, name=f"bot-mirror-{socket.gethostname()}", maxsize=100_000
    )
    bots = BotSide(settings, bus, signal_store=signal_store, contexts=mirror.contexts.get,
                   feed_health=mirror.feed_health, metrics=metrics)
    print(f"flowbot: bots for {', '.join(settings.symbols)} on {_bus_name(settings)}; Ctrl-C stops", flush=True)
    try:
        async with serving_health(settings, metrics, started_ready("bots", bots.started)):
            await _until_first_ends(mirror.follow(following), bots.run())
    finally:
        signal_store.close()
        await bus.close()


def _announce(settings: Settings, symbols: list[str]) -> None:
    print(
        f"flowbot: streaming {', '.join(symbols)} ({settings.market.value} {settings.stream.value}) "
        f"from {settings.ws_url}; Ctrl-C stops",
        flush=True,
    )


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


async def run_replay(settings: Settings, args: argparse.Namespace) -> int:
    missing = [p for p in args.paths if not p.exists()]
    for path in missing:
        print(f"flowbot replay: no such file: {path}", file=sys.stderr)
    paths = [p for p in args.paths if p.exists()]
    if not paths:
        return 1
    report = await replay(paths, settings, speed=args.speed, symbol=args.symbol, as_json=args.jsonl)
    return 1 if missing or report.unreadable else 0


def show_flow(settings: Settings, args: argparse.Namespace) -> int:
    symbol = args.symbol
    report = flow_report(FeatureStore(Path(settings.data_dir)), symbol, args.window)
    if report is None:
        print(f"No stored flow for {symbol} in {settings.data_dir}: run `flowbot run` or `flowbot replay` first "
              f"(stored symbols: {', '.join(FeatureStore(Path(settings.data_dir)).symbols()) or 'none'}).")
        return 1
    print(format_flow(report, time.time()))
    return 0


def _run_until_signalled(main: Coroutine[Any, Any, None]) -> int:
    async def runner() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await main

    asyncio.run(runner())
    print("flowbot: stopped", file=sys.stderr)
    return 0


async def answer_question(settings: Settings, question: str) -> int:
    """`flowbot ask`: the answer on stdout (exit 0 whenever it answered)."""
    data_dir = Path(settings.data_dir)
    store = FeatureStore(data_dir)
    signal_store = SignalStore(data_dir / "flowbot.db")
    try:
        asker = Asker(
            ProviderChain(providers_from(settings), timeout=settings.ai_timeout).answer, store,
            symbols=settings.symbols, signal_store=signal_store, rate_limit=settings.ask_rate_limit,
        )
        print((await asker.ask(question)).text)
    finally:
        signal_store.close()
    return 0


def _symbol(text: str) -> str:
    symbol = text.strip().upper()
    if not symbol.isalnum() or not symbol.isascii():
        raise argparse.ArgumentTypeError(f"{text!r} is not a symbol (letters and digits, e.g. BTCUSDT)")
    return symbol


def _speed(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("speed must be 0 (as fast as possible) or positive")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowbot", description="Order-flow alerts for Binance markets.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="engine, analyst and bots in one process (alerts on the console without a bot)")
    commands.add_parser("engine", help="an engine shard (SHARD_COUNT, SHARD_INDEX) publishing on BUS_URL")
    commands.add_parser("bot", help="the analyst and the bots, consuming the engine shards' events from BUS_URL")
    commands.add_parser("dashboard", help="the web dashboard alone on HEALTH_HOST:HEALTH_PORT, following BUS_URL")
    replay_parser = commands.add_parser("replay", help="replay Binance data files through the pipeline")
    replay_parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                               help="aggTrades/trades CSV dumps, JSON lines of WebSocket messages, REST JSON arrays")
    replay_parser.add_argument("--speed", type=_speed, default=0.0,
                               help="0 = as fast as possible (default); 10 = ten times the market's pace")
    replay_parser.add_argument("--symbol", type=_symbol, help="symbol of files whose name or content does not say it")
    replay_parser.add_argument("--jsonl", action="store_true", help="print signals as JSON lines")
    flow_parser = commands.add_parser("flow", help="print the stored flow summary of a symbol")
    flow_parser.add_argument("symbol", metavar="SYMBOL", type=_symbol)
    flow_parser.add_argument("--window", choices=list(FLOW_SPANS_MS), default="1h")
    commands.add_parser("doctor", help="check settings, DATA_DIR and that Binance, bots, AI providers and Redis answer")
    ask_parser = commands.add_parser("ask", help="answer a question about current flow, e.g. \"is BTC being bought?\"")
    ask_parser.add_argument("question", nargs="+", metavar="QUESTION")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"flowbot: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    try:
        if args.command == "run":
            return _run_until_signalled(run_all(settings))
        if args.command == "engine":
            return _run_until_signalled(run_engine(settings))
        if args.command == "bot":
            return _run_until_signalled(run_bots(settings))
        if args.command == "dashboard":
            return _run_until_signalled(run_dashboard(settings))
        if args.command == "replay":
            return asyncio.run(run_replay(settings, args))
        if args.command == "flow":
            return show_flow(settings, args)
        if args.command == "doctor":
            return asyncio.run(doctor(settings, sys.stdout))
        if args.command == "ask":
            return asyncio.run(answer_question(settings, " ".join(args.question)))
    except HealthPortError as exc:
        print(f"flowbot: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"flowbot: cannot use DATA_DIR={settings.data_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())

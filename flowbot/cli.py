"""The `flowbot` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ai.analyst import Analyst, Explanation, explain_from_bus
from ai.ask import Asker
from ai.providers import ProviderChain, providers_from
from ai.worker import ModelWorker
from bot.handlers.flow_text import format_flow
from bot.service import BotService
from engine.analysis.pipeline import FlowPipeline
from engine.bus import InMemoryBus
from engine.connection.feed import BinanceFeed
from engine.events import Signal
from engine.trades import Trade
from flowbot.replay import replay
from flowbot.settings import Settings, StreamKind
from flowbot.ticker import WindowTicker
from storage.feature_store import FeatureStore
from storage.flow_query import FLOW_SPANS_MS, flow_report
from storage.signal_store import SignalStore

COMPACT_EVERY_S = 600


async def run_feed(settings: Settings) -> None:
    """Stream the configured symbols through the pipeline to the store, signals to the bots (or the console)."""
    bus = InMemoryBus(settings.bus_queue_size)
    data_dir = Path(settings.data_dir)
    store = FeatureStore(data_dir, flush_interval=settings.flush_interval)
    signal_store = SignalStore(data_dir / "flowbot.db")
    pipeline = FlowPipeline(
        settings, bus, store=store, signal_store=signal_store, by_trade_ids=settings.stream is StreamKind.TRADE
    )
    providers = providers_from(settings)
    worker = ModelWorker(settings) if providers else None  # model calls off the engine's loop
    if worker is not None:
        await worker.start()
    complete = worker.answer if worker is not None else ProviderChain([], timeout=settings.ai_timeout).answer
    analyst = Analyst(
        complete, contexts=pipeline.contexts.get, signal_store=signal_store, concurrency=settings.ai_concurrency
    )
    feed = BinanceFeed(settings, bus)
    bots = BotService(
        settings, store=store, signal_store=signal_store,
        asker=Asker(complete, store, symbols=settings.symbols, signal_store=signal_store,
                    rate_limit=settings.ask_rate_limit),
        feed_health=feed.health.snapshot, provider_health=lambda: {p.name: "configured" for p in providers},
        out=sys.stdout,
    )
    ticker = WindowTicker(feed.symbols, settings.window_duration, feed.health, sys.stdout)

    def on_trades(symbol: str, trades: list[Trade]) -> None:
        ticker.add(symbol, trades)
        pipeline.on_trades(symbol, trades)

    feed.on_trades = on_trades
    print(
        f"flowbot: streaming {', '.join(feed.symbols)} ({settings.market.value} {settings.stream.value}) "
        f"from {settings.ws_url}; Ctrl-C stops",
        flush=True,
    )

    async def housekeeping() -> None:
        flushed = compacted = time.monotonic()
        while True:
            await asyncio.sleep(min(1.0, settings.window_duration / 2))
            ticker.print_closed()
            pipeline.close_idle(int(time.time() * 1000), feed.is_whole)
            if time.monotonic() - flushed >= settings.flush_interval:
                store.flush()
                flushed = time.monotonic()
            if time.monotonic() - compacted >= COMPACT_EVERY_S:  # one file per flush would pile up
                today = time.strftime("%Y-%m-%d", time.gmtime())
                for symbol in store.symbols():
                    store.compact(symbol, today)
                compacted = time.monotonic()

    def explained(signal: Signal, explanation: Explanation) -> None:
        bots.on_explanation(signal.id, explanation.text, explanation.provider)

    to_analyst = bus.subscribe(Signal, name="analyst", maxsize=1_000)
    to_bots = bus.subscribe(Signal, name="bots", maxsize=10_000)
    await bots.start()
    tasks = [
        asyncio.create_task(housekeeping()),
        asyncio.create_task(explain_from_bus(analyst, to_analyst, explained)),
        asyncio.create_task(bots.consume(to_bots)),
    ]
    try:
        await feed.run()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await bots.stop()
        if worker is not None:
            await worker.close()
        store.close()
        signal_store.close()
        await bus.close()


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
    commands.add_parser("run", help="stream the configured symbols, store flow features and print signals")
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
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        if args.command == "run":
            return _run_until_signalled(run_feed(settings))
        if args.command == "replay":
            return asyncio.run(run_replay(settings, args))
        if args.command == "flow":
            return show_flow(settings, args)
        if args.command == "ask":
            return asyncio.run(answer_question(settings, " ".join(args.question)))
    except OSError as exc:
        print(f"flowbot: cannot use DATA_DIR={settings.data_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())

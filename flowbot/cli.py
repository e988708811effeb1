"""The `flowbot` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from pydantic import ValidationError

from engine.bus import InMemoryBus
from engine.connection.feed import BinanceFeed
from flowbot.settings import Settings
from flowbot.ticker import WindowTicker


async def run_feed(settings: Settings) -> None:
    """Stream the configured symbols and print one line per symbol per window."""
    bus = InMemoryBus(settings.bus_queue_size)
    feed = BinanceFeed(settings, bus)
    ticker = WindowTicker(feed.symbols, settings.window_duration, feed.health, sys.stdout)
    feed.on_trades = ticker.add
    print(
        f"flowbot: streaming {', '.join(feed.symbols)} ({settings.market.value} {settings.stream.value}) "
        f"from {settings.ws_url}; Ctrl-C stops",
        flush=True,
    )
    ticker_task = asyncio.create_task(ticker.run())
    try:
        await feed.run()
    finally:
        ticker_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker_task
        await bus.close()


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowbot", description="Order-flow alerts for Binance markets.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="stream the configured symbols and print flow per window")
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
    if args.command == "run":
        return _run_until_signalled(run_feed(settings))
    return 2


if __name__ == "__main__":
    sys.exit(main())

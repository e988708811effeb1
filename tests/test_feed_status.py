"""A feed that cannot connect says so, with how often it failed and why, on the console and in /status: never `ok`."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import socket
import sys
from pathlib import Path

from ai.ask import Asker
from ai.providers import ProviderChain
from bot.database import open_database
from bot.handlers.commands import Commands
from bot.models import Caller, Destination
from bot.outbox import Outbox
from bot.subscriptions import Subscriptions
from core.settings import Settings
from engine.bus import InMemoryBus
from flowbot.feed_config import make_feed
from flowbot.ticker import WindowTicker
from storage.feature_store import FeatureStore

FAST_RETRIES = {"WS_RECONNECT_BASE_DELAY": "0.05", "WS_RECONNECT_MAX_DELAY": "0.1"}


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_feed_that_never_connected_says_connecting_with_its_failures_and_last_reason(tmp_path: Path) -> None:
    port = closed_port()
    settings = Settings(_env_file=None, SYMBOLS="BTCUSDT", BINANCE_WS_URL=f"ws://127.0.0.1:{port}",
                        BINANCE_REST_URL=f"http://127.0.0.1:{port}", **FAST_RETRIES)
    feed = make_feed(settings, InMemoryBus())
    running = asyncio.create_task(feed.run())
    try:
        while not feed.health.connections or feed.health.connections["spot-0"].consecutive_failures < 3:
            await asyncio.sleep(0.02)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)

    state = feed.health.state()
    failures = state.failures
    reason = f"cannot connect to 127.0.0.1:{port} (refused)"
    assert state.text().startswith(f"connecting: {failures} failures, last: {reason}")

    line = WindowTicker(["BTCUSDT"], 5, feed.health, io.StringIO(), closed_through=lambda _: None).line("BTCUSDT", 0,
                                                                                                        None)
    assert line.endswith(state.text()) and not line.endswith(" ok")

    db = open_database(tmp_path / "flowbot.db")
    store = FeatureStore(tmp_path)
    commands = Commands(
        subscriptions=Subscriptions(db), outbox=Outbox(db, 30), store=store, symbols=["BTCUSDT"],
        asker=Asker(ProviderChain([], timeout=1).answer, store, symbols=["BTCUSDT"]),
        feed_health=feed.health.snapshot,
    )
    caller = Caller(Destination("telegram", "1001"), user_id="1001")
    reply = await commands.run(caller, "status", [])
    assert reply.title.startswith(f"Feed connecting: {failures} failures in a row, last: {reason}")
    assert "Connection spot-0: disconnected" in reply.body


async def test_flowbot_run_without_a_reachable_binance_prints_connecting_and_no_library_chatter(tmp_path) -> None:
    port = closed_port()
    env = {**os.environ, "SYMBOLS": "BTCUSDT", "BINANCE_WS_URL": f"ws://127.0.0.1:{port}",
           "BINANCE_REST_URL": f"http://127.0.0.1:{port}", "WINDOW_DURATION": "1", "DATA_DIR": str(tmp_path),
           "HEALTH_PORT": "0", "LOG_LEVEL": "INFO", **FAST_RETRIES}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowbot.cli", "run", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        while len([line for line in lines if "trades=" in line]) < 3:
            lines.append((await asyncio.wait_for(process.stdout.readline(), 30)).decode())
        process.send_signal(signal.SIGINT)
        rest, stderr = await asyncio.wait_for(process.communicate(), 15)
    finally:
        if process.returncode is None:
            process.kill()
    windows = [line for line in [*lines, *rest.decode().splitlines()] if "trades=" in line]
    pattern = rf"connecting: \d+ failures?, last: cannot connect to 127\.0\.0\.1:{port} \(refused\)"
    assert windows and all(re.search(pattern + "$", line.rstrip()) for line in windows), windows
    assert not any(line.rstrip().endswith(" ok") for line in windows)
    log = stderr.decode()
    assert "connection spot-0 failed" in log  # our own warnings stay
    assert "apscheduler" not in log and "Adding job" not in log, log


def test_the_console_never_walks_window_by_window_from_old_trades_to_the_wall_clock(shared_data: Path) -> None:
    """A recording's windows (trade time months back) and a silent symbol marked by the wall clock: one line says
    the stretch without trades, instead of a line per 5 s window since the recording (the stall of issue 13)."""
    from expected_flow import columns, load_csv

    from engine.analysis.pipeline import FlowPipeline
    from flowbot.analysis_config import pipeline_config

    settings = Settings(_env_file=None, SYMBOLS="BTCUSDT,ETHUSDT", BINANCE_WS_URL="ws://127.0.0.1:9")
    feed = make_feed(settings, InMemoryBus())  # never connected: the ticker falls back to the wall clock
    pipeline = FlowPipeline(pipeline_config(settings), InMemoryBus())
    out = io.StringIO()
    ticker = WindowTicker(["BTCUSDT", "ETHUSDT"], 5, feed.health, out, closed_through=pipeline.closed_through)
    pipeline.on_windows = ticker.add
    rows = load_csv(shared_data / "BTCUSDT-aggTrades-2026-01-01.csv")
    pipeline.on_columns(columns(rows))
    pipeline.close_to_watermarks({"BTCUSDT": rows[-1]["T"] + 10_000})  # the dump's last window closed, in trade time
    ticker.print_closed()
    lines = out.getvalue().splitlines()
    btc = [line for line in lines if " BTCUSDT " in line]
    eth = [line for line in lines if " ETHUSDT " in line]
    assert sum("trades=0 " not in line for line in btc) == len({r["T"] // 5000 for r in rows})  # every window
    assert len(eth) <= 62 and "no trades from 2026-01-01 00:00:00 to " in eth[0]

"""Issue 14, points 3 and 4: `flowbot run` as a process with a chat platform down or refusing its token: the engine,
the store and the other platforms go on, /readyz names the platform that is down, and no token is ever printed."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
import time
from decimal import Decimal

import aiohttp
import orjson
import pyarrow.parquet as pq
from alert_groups import merge_groups
from test_cli_run import RATE, live_btc_tape

from core.events import Signal
from fakes.binance import FakeBinance
from fakes.discord_api import FakeDiscord
from fakes.telegram_api import FakeTelegram

TELEGRAM_TOKEN = "987654:CANARYtelegramSECRET0123456789"
DISCORD_TOKEN = "CANARYdiscordSECRET.0123456789abcdef"
MERGE_S = 30


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_with(fake: FakeBinance, env: dict[str, str], stamps: list[int]) -> tuple[int, str, dict, str]:
    """`flowbot run` until the tape is played and its windows closed; /readyz's answer, then Ctrl-C."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowbot.cli", "run", env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        line = ""
        while "/healthz" not in line:
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        health_url = line.rsplit(" ", 1)[-1].strip()
        while fake.open_connections() < 1:
            await asyncio.sleep(0.05)
        fake.play()
        await fake.wait_played()
        last_window_closed = stamps[-1] / 1000 + 1 + 1 + 1.5  # its 1 s window, 1 s grace, then housekeeping
        await asyncio.sleep(max(0.0, last_window_closed - time.time()))
        async with aiohttp.ClientSession() as session, session.get(health_url + "readyz") as response:
            ready_status, ready = response.status, await response.json()
        assert process.returncode is None, "the process must still be running"
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 15)
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode is not None
    return ready_status, stderr.decode(), ready, health_url


async def test_telegram_down_at_start_never_stops_the_engine_nor_the_webhook(shared_data, tmp_path) -> None:
    btc, live, stamps = live_btc_tape(shared_data)
    async with FakeDiscord() as discord_fake:
        webhook = discord_fake.add_webhook(4242)
        fake = FakeBinance(live, rate=RATE)
        await fake.start()
        env = {
            "SYMBOLS": "BTCUSDT", "BINANCE_WS_URL": fake.ws_url, "BINANCE_REST_URL": fake.rest_url,
            "DATA_DIR": str(tmp_path), "WINDOW_DURATION": "1", "WINDOW_GRACE": "1", "WHALE_MIN_NOTIONAL": "2000",
            "WHALE_PERCENTILE": "0", "HEALTH_PORT": "0", "LOG_LEVEL": "INFO", "ALERT_MERGE_WINDOW": str(MERGE_S),
            "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN, "TELEGRAM_API_BASE_URL": f"http://127.0.0.1:{closed_port()}",
            "DISCORD_WEBHOOK_URL": webhook.url, "DISCORD_API_BASE_URL": discord_fake.api_base,
        }
        try:
            status, err, ready, _ = await run_with(fake, env, stamps)
        finally:
            await fake.close()
        sent = list(discord_fake.messages)
    assert status == 503
    assert ready["platforms"]["telegram"].startswith("cannot reach TELEGRAM_API_BASE_URL=http://127.0.0.1:")
    assert "Traceback" not in err and "CANARY" not in err
    assert "telegram: cannot reach TELEGRAM_API_BASE_URL" in err and "trying again in" in err
    stored = pq.read_table(tmp_path / "features").to_pylist()  # the engine and the store went on
    assert sum(row["trade_count"] for row in stored) == len(btc)
    assert sum(Decimal(repr(row["volume"])) for row in stored) == sum(Decimal(m["data"]["q"]) for m in btc)
    with sqlite3.connect(tmp_path / "flowbot.db") as db:
        rows = db.execute("select id, symbol, kind, direction, severity, window_start, window_end, evidence, "
                          "created_at from signals order by window_end, id").fetchall()
    signals = [Signal(id=r[0], symbol=r[1], kind=r[2], direction=r[3], severity=r[4], window_start=r[5],
                      window_end=r[6], evidence=orjson.loads(r[7]), created_at=r[8]) for r in rows]
    assert signals, "a 2,000 USDT whale floor gives signals on this tape"
    assert len(sent) == len(merge_groups(signals, MERGE_S))  # the other platform got every alert


async def test_a_rejected_telegram_token_gets_one_line_naming_the_setting(shared_data, tmp_path) -> None:
    _, live, stamps = live_btc_tape(shared_data)
    async with FakeTelegram("111:another-token") as telegram:
        for base in (telegram.url, telegram.url + "/typo"):  # 401 Unauthorized, and 404 for a path typo
            fake = FakeBinance(live, rate=RATE)
            await fake.start()
            env = {
                "SYMBOLS": "BTCUSDT", "BINANCE_WS_URL": fake.ws_url, "BINANCE_REST_URL": fake.rest_url,
                "DATA_DIR": str(tmp_path / base[-4:]), "WINDOW_DURATION": "1", "WINDOW_GRACE": "1", "HEALTH_PORT": "0",
                "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN, "TELEGRAM_API_BASE_URL": base,
                "DISCORD_BOT_TOKEN": DISCORD_TOKEN, "DISCORD_API_BASE_URL": f"http://127.0.0.1:{closed_port()}/api",
            }
            try:
                status, err, ready, _ = await run_with(fake, env, stamps)
            finally:
                await fake.close()
            assert status == 503
            assert ready["platforms"] == {
                "telegram": f"TELEGRAM_BOT_TOKEN was rejected by {base} (401/404): check the token and "
                            "TELEGRAM_API_BASE_URL",
                "discord": ready["platforms"]["discord"],
            }
            assert ready["platforms"]["discord"].startswith("cannot reach DISCORD_API_BASE_URL=")
            assert "CANARY" not in err and TELEGRAM_TOKEN.split(":")[0] not in err
            assert "Traceback" not in err and "cannot use DATA_DIR" not in err
            assert "ERROR bot.service: telegram: TELEGRAM_BOT_TOKEN was rejected by" in err

"""Flowbot as several OS processes joined by Redis Streams: two engine shards and a bot, against the fake
Binance and the fake Telegram, then a bot killed with SIGKILL mid-stream and started again."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from bot.database import open_database
from bot.models import Destination
from bot.subscriptions import Subscriptions
from fakes.binance import FakeBinance
from fakes.recordings import load_ws_recording
from fakes.telegram_api import FakeTelegram

RATE = 300.0
SYMBOLS = ("BTCUSDT", "ETHUSDT")
CHAT = 7001


def live_tape(shared_data: Path) -> tuple[list[dict], float]:
    """BTCUSDT and ETHUSDT from the recording, interleaved, stamped at the pace the fake plays them, a few
    seconds ahead so that no trade is older than its window however slowly the processes start."""
    recording = [m for m in load_ws_recording(shared_data / "binance-spot-aggtrade-ws.jsonl")
                 if m["data"]["s"] in SYMBOLS]
    start_ms = int(time.time() * 1000) + 8_000
    tape = [{**m, "data": {**m["data"], "E": start_ms + int(i * 1000 / RATE), "T": start_ms + int(i * 1000 / RATE)}}
            for i, m in enumerate(recording)]
    return tape, tape[-1]["data"]["T"] / 1000


@pytest.fixture
def bus_url(own_redis_url: str) -> str:
    return own_redis_url


def environment(fake: FakeBinance, telegram: FakeTelegram, data_dir: Path, bus_url: str, **more: str) -> dict:
    return {
        **os.environ, "SYMBOLS": ",".join(SYMBOLS), "BINANCE_WS_URL": fake.ws_url, "BINANCE_REST_URL": fake.rest_url,
        "BUS_URL": bus_url, "DATA_DIR": str(data_dir), "WINDOW_DURATION": "1", "WINDOW_GRACE": "1",
        "WHALE_MIN_NOTIONAL": "1000", "WHALE_PERCENTILE": "0", "SIGNAL_COOLDOWN": "5", "ALERT_MERGE_WINDOW": "2",
        "TELEGRAM_BOT_TOKEN": telegram.token, "TELEGRAM_API_BASE_URL": telegram.url, "TELEGRAM_CHAT_INTERVAL": "0",
        "HEALTH_PORT": "0", "LOG_LEVEL": "WARNING", "HEALTH_CHECK_INTERVAL": "1", "ALERT_BUDGET_PER_DAY": "0", **more,
    }


async def start(command: str, env: dict, **extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowbot.cli", command, env={**env, **extra},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )


async def stop(process: asyncio.subprocess.Process) -> str:
    if process.returncode is None:
        process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 20)
    return err.decode()


def subscribe(data_dir: Path) -> None:
    db = open_database(data_dir / "flowbot.db")
    subscriptions = Subscriptions(db)
    key = Destination("telegram", str(CHAT))
    subscriptions.ensure_chat(key, is_private=True)
    subscriptions.subscribe(key, SYMBOLS)
    db.close()


def ledger(data_dir: Path) -> tuple[list[str], dict[str, int], dict[str, int]]:
    """Signals stored by the bot, how many outbox rows hold each, and the outbox rows per state."""
    with sqlite3.connect(data_dir / "flowbot.db") as db:
        signals = [row[0] for row in db.execute("SELECT id FROM signals ORDER BY id")]
        held = dict(db.execute("SELECT signal_id, count(*) FROM outbox_signals GROUP BY signal_id").fetchall())
        states = dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
    return signals, held, states


async def settle(data_dir: Path, telegram: FakeTelegram, timeout: float = 30) -> None:
    """Until every stored signal is in the outbox and nothing waits to be sent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        signals, held, states = ledger(data_dir)
        if signals and set(signals) <= set(held) and not states.get("pending") and not states.get("sending"):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the bot did not settle: {ledger(data_dir)}")


def assert_each_alert_once(telegram: FakeTelegram, data_dir: Path) -> None:
    signals, held, states = ledger(data_dir)
    assert {s.split("-")[0] for s in signals} == set(SYMBOLS)  # both shards' signals reached the bot
    assert all(held.get(s) == 1 for s in signals)  # each signal in exactly one alert
    sent_rows = states.get("sent", 0)
    to_chat = [m for m in telegram.sent if m.chat_id == CHAT]
    unconfirmed = states.get("unconfirmed", 0)  # on the wire at the SIGKILL: kept, not sent again
    assert sent_rows <= len(to_chat) <= sent_rows + unconfirmed
    assert len({m.text for m in to_chat}) == len(to_chat)  # no message twice
    assert not states.get("pending") and not states.get("failed")


async def test_two_engine_shards_and_a_bot_deliver_each_signal_once(shared_data, tmp_path, bus_url) -> None:
    tape, last_s = live_tape(shared_data)
    subscribe(tmp_path)
    async with FakeBinance(tape, rate=RATE) as fake, FakeTelegram() as telegram:
        env = environment(fake, telegram, tmp_path, bus_url, SHARD_COUNT="2")
        bot = await start("bot", env)
        shards = [await start("engine", env, SHARD_INDEX=str(i)) for i in range(2)]
        try:
            while fake.open_connections() < 2:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # the bot's consumer groups exist before the first event
            fake.play()
            await fake.wait_played(60)
            await asyncio.sleep(max(0.0, last_s + 3 - time.time()))  # the last windows close
            await settle(tmp_path, telegram)
        finally:
            errors = [await stop(p) for p in (*shards, bot)]
        assert all("Traceback" not in e for e in errors), errors
        assert_each_alert_once(telegram, tmp_path)


async def test_a_bot_killed_mid_stream_resumes_without_duplicates_or_lost_rows(shared_data, tmp_path, bus_url):
    tape, last_s = live_tape(shared_data)
    subscribe(tmp_path)
    async with FakeBinance(tape, rate=RATE) as fake, FakeTelegram() as telegram:
        env = environment(fake, telegram, tmp_path, bus_url)
        bot = await start("bot", env)
        engine = await start("engine", env)
        try:
            while fake.open_connections() < 1:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            fake.play()
            await telegram.wait_for_sent(1, timeout=60)
            bot.kill()  # SIGKILL in the middle of the stream
            await bot.wait()
            bot = await start("bot", env)
            await fake.wait_played(60)
            await asyncio.sleep(max(0.0, last_s + 3 - time.time()))
            await settle(tmp_path, telegram)
        finally:
            errors = [await stop(p) for p in (engine, bot)]
        assert all("Traceback" not in e for e in errors), errors
        assert_each_alert_once(telegram, tmp_path)


async def test_alert_rules_fire_over_redis_streams_as_in_one_process(shared_data, tmp_path, bus_url) -> None:
    tape, last_s = live_tape(shared_data)
    btc = [Decimal(m["data"]["p"]) for m in tape if m["data"]["s"] == "BTCUSDT"]
    level = sorted(btc)[len(btc) * 2 // 3]  # crossed upward somewhere after the first trade
    assert btc[0] <= level < max(btc)
    async with FakeBinance(tape, rate=RATE) as fake, FakeTelegram() as telegram:
        env = environment(fake, telegram, tmp_path, bus_url)
        bot = await start("bot", env)
        engine = await start("engine", env)
        try:
            while fake.open_connections() < 1:
                await asyncio.sleep(0.05)
            for text in (f"/alert BTCUSDT price > {level}", "/alert ETHUSDT volume 1m > 0.000001"):
                before = len(telegram.sent)
                telegram.push_message(CHAT, text)
                await telegram.wait_until(lambda before=before: len(telegram.sent) > before, timeout=20)
                assert "set" in (telegram.sent[-1].text or "")
            await asyncio.sleep(1.0)  # the bot's consumer groups exist before the first event
            fake.play()
            await fake.wait_played(60)
            await asyncio.sleep(max(0.0, last_s + 3 - time.time()))  # the last windows close
            await telegram.wait_until(lambda: len([m for m in telegram.sent if "🔔" in (m.text or "")]) >= 2, 20)
            await asyncio.sleep(1.0)  # nothing more arrives
        finally:
            errors = [await stop(p) for p in (engine, bot)]
        assert all("Traceback" not in e for e in errors), errors
        fired = [m.text or "" for m in telegram.sent if "🔔" in (m.text or "")]
        assert len(fired) == 2  # each rule once: at most one firing a minute, and the tape is shorter
        [price] = [t for t in fired if "price &gt;" in t]
        assert f"BTCUSDT price &gt; {level.normalize():f}" in price
        shown = Decimal(re.search(r"price ([\d,.]+) at", price).group(1).replace(",", ""))  # type: ignore[union-attr]
        assert shown > level and shown in btc  # a trade through the level (the highest of its batch)
        assert any("ETHUSDT volume 1m &gt; 0.000001" in t for t in fired)

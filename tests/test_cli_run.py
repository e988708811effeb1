"""`flowbot run` as a user runs it: a real process against the fake Binance, stopped with Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from decimal import Decimal

import aiohttp
import pyarrow.parquet as pq

from fakes.binance import FakeBinance
from fakes.recordings import load_ws_recording

RATE = 400.0


def live_btc_tape(shared_data) -> tuple[list[dict], list[dict], list[int]]:
    """The recording's BTCUSDT trades made "live": real prices and sizes, stamped at the pace the fake plays them,
    starting a few seconds ahead so that however slowly the process starts, no trade is older than its window."""
    recording = load_ws_recording(shared_data / "binance-spot-aggtrade-ws.jsonl")
    btc = [m for m in recording if m["data"]["s"] == "BTCUSDT"]
    start_ms = int(time.time() * 1000) + 6_000
    stamps = [start_ms + int(i * 1000 / RATE) for i in range(len(btc))]
    live = [{**m, "data": {**m["data"], "E": ms, "T": ms}} for m, ms in zip(btc, stamps, strict=True)]
    return btc, live, stamps


async def run_until_played(
    fake: FakeBinance, env: dict[str, str], stamps: list[int], probes: dict[str, tuple[int, str]] | None = None
) -> tuple[int, str, str]:
    """`flowbot run` as a process until the tape is played and its last 1 s window printed, then Ctrl-C;
    just before, `probes` gets the (status, body) of each health endpoint it names."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowbot.cli", "run", env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    head = []
    try:
        while not head or "/healthz" not in head[-1]:
            head.append((await asyncio.wait_for(process.stdout.readline(), 30)).decode())
        health_url = head[-1].rsplit(" ", 1)[-1].strip()
        while fake.open_connections() < 1:
            await asyncio.sleep(0.05)
        fake.play()
        await fake.wait_played()
        last_window_printed = stamps[-1] / 1000 + 1 + 1 + 1.0  # its 1 s window, 1 s grace, printing within 0.5 s
        await asyncio.sleep(max(0.0, last_window_printed - time.time()))
        if probes is not None:
            async with aiohttp.ClientSession() as session:
                for path in list(probes):
                    async with session.get(health_url + path.lstrip("/")) as response:
                        probes[path] = (response.status, await response.text())
        process.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 10)
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode is not None
    return process.returncode, "".join(head) + stdout.decode(), stderr.decode()


async def test_flowbot_run_prints_windows_stores_them_and_stops_cleanly_on_ctrl_c(shared_data, tmp_path) -> None:
    btc, live, stamps = live_btc_tape(shared_data)
    fake = FakeBinance(live, rate=RATE)
    await fake.start()
    env = {
        "SYMBOLS": "BTCUSDT,ETHUSDT", "BINANCE_WS_URL": fake.ws_url, "BINANCE_REST_URL": fake.rest_url,
        "WINDOW_DURATION": "1", "LOG_LEVEL": "WARNING", "DATA_DIR": str(tmp_path), "WINDOW_GRACE": "1",
        "HEALTH_PORT": "0",
    }
    probes = {"/healthz": (0, ""), "/readyz": (0, ""), "/metrics": (0, ""), "/": (0, ""), "/alerts": (0, "")}
    try:
        returncode, out, err = await run_until_played(fake, env, stamps, probes)
    finally:
        await fake.close()
    assert returncode == 0, err
    assert probes["/healthz"][0] == 200
    assert probes["/readyz"][0] == 200 and '"ready": true' in probes["/readyz"][1]
    metrics = probes["/metrics"][1]
    assert f'flowbot_trades_total{{symbol="BTCUSDT"}} {float(len(btc))}' in metrics
    assert "flowbot_outbox_depth" in metrics and "flowbot_receive_lag_seconds" in metrics
    assert probes["/"][0] == 200 and "BTCUSDT" in probes["/"][1] and "ETHUSDT" in probes["/"][1]  # the dashboard
    last_price = f"{Decimal(btc[-1]['data']['p']).normalize():,f}"
    assert last_price in probes["/"][1]  # BTCUSDT's card has the engine's newest window (it reads its context)
    assert probes["/alerts"][0] == 200
    lines = out.splitlines()
    assert lines[0].startswith("flowbot: streaming BTCUSDT, ETHUSDT")
    btc_lines = [line for line in lines if " BTCUSDT " in line and "trades=" in line]
    eth_lines = [line for line in lines if " ETHUSDT " in line and "trades=" in line]
    assert btc_lines and len(eth_lines) == len(btc_lines)  # one line per symbol per window
    printed_trades = sum(int(line.split("trades=")[1].split()[0]) for line in btc_lines)
    printed_volume = sum(Decimal(line.split("volume=")[1].split()[0]) for line in btc_lines)
    assert printed_trades == len(btc)
    assert printed_volume == sum(Decimal(m["data"]["q"]) for m in btc)
    assert "stopped" in err and "Traceback" not in err
    stored = pq.read_table(tmp_path / "features").to_pylist()  # the live pipeline wrote every window on the way
    assert sum(row["trade_count"] for row in stored) == len(btc)
    assert sum(Decimal(repr(row["volume"])) for row in stored) == printed_volume


async def test_flowbot_run_explains_its_signals_through_the_first_provider(shared_data, tmp_path, chat) -> None:
    import sqlite3

    from fakes.chat_completions import Reply

    _, live, stamps = live_btc_tape(shared_data)
    chat.answer_with("groq", lambda body: Reply(text="Large buyers and sellers were active; flow is worth watching."))
    fake = FakeBinance(live, rate=RATE)
    await fake.start()
    env = {
        "SYMBOLS": "BTCUSDT", "BINANCE_WS_URL": fake.ws_url, "BINANCE_REST_URL": fake.rest_url,
        "DATA_DIR": str(tmp_path), "WINDOW_DURATION": "1", "WINDOW_GRACE": "1", "WHALE_MIN_NOTIONAL": "2000",
        "WHALE_PERCENTILE": "0", "GROQ_API_KEY": "gsk-test-secret", "GROQ_BASE_URL": chat.groq_base_url,
        "LOG_LEVEL": "INFO", "HEALTH_PORT": "0",
    }
    try:
        returncode, out, err = await run_until_played(fake, env, stamps)
    finally:
        await fake.close()
    assert returncode == 0, err
    alerts = [line for line in out.splitlines() if line.startswith("ALERT #")]
    updates = [line for line in out.splitlines() if line.startswith("UPDATE #")]
    assert alerts and all(line.split(" ", 3)[2] == "BTCUSDT" for line in alerts)
    last_text: dict[str, str] = {}
    for line, body in _printed_messages(out):
        last_text[line.split()[1]] = body
    assert set(last_text) == {line.split()[1] for line in alerts}  # every update edits a printed alert
    assert all("Analysis (groq): Large buyers and sellers were active" in text for text in last_text.values())
    assert updates
    assert chat.requests and all(r.provider == "groq" for r in chat.requests)
    with sqlite3.connect(tmp_path / "flowbot.db") as db:
        stored = db.execute("select count(*) from signals").fetchone()[0]
        explained = db.execute("select count(*) from signals where provider = 'groq'").fetchone()[0]
        alerted = db.execute(
            "select count(distinct s.signal_id) from outbox_signals s join outbox o on o.id = s.outbox_id"
            " where o.platform = 'console' and o.state = 'sent'"
        ).fetchone()[0]
    assert stored and explained == stored and alerted == stored  # every signal alerted once and explained
    assert "gsk-test-secret" not in err + out


def _printed_messages(out: str) -> list[tuple[str, str]]:
    """(first line, whole text) of each ALERT or UPDATE the console adapter printed (lines below are indented)."""
    messages: list[tuple[str, str]] = []
    for line in out.splitlines():
        if line.startswith(("ALERT #", "UPDATE #")):
            messages.append((line, line))
        elif line.startswith("    ") and messages:
            messages[-1] = (messages[-1][0], messages[-1][1] + "\n" + line.strip())
    return messages

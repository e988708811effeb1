"""Storage faults of the machine under a real `flowbot run`: DATA_DIR read-only or full for a while, flowbot.db
locked by another process. The same tape (a real recording) is stored and alerted as without the fault once it
clears, the process keeps answering /healthz, and /readyz says why it is not ready while a store cannot write."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pyarrow.parquet as pq
import pytest

from fakes.binance import FakeBinance
from fakes.recordings import load_ws_recording

RATE = 100.0  # trades a second: the tape lasts ~12 s, long enough for a fault in its middle
Fault = Callable[[str], Awaitable[dict[str, object]]]  # given the health URL, makes and clears a fault; what it saw


def live_btc_tape(shared_data: Path) -> tuple[list[dict], list[int]]:
    """The recording's BTCUSDT trades stamped at the pace the fake plays them, a few seconds ahead, from a whole
    second (so that every run cuts the same windows)."""
    btc = [m for m in load_ws_recording(shared_data / "binance-spot-aggtrade-ws.jsonl") if m["data"]["s"] == "BTCUSDT"]
    start_ms = (int(time.time()) + 6) * 1000
    stamps = [start_ms + int(i * 1000 / RATE) for i in range(len(btc))]
    return [{**m, "data": {**m["data"], "E": ms, "T": ms}} for m, ms in zip(btc, stamps, strict=True)], stamps


async def get(url: str, timeout: float = 3.0) -> tuple[int, str]:
    """(status, body) of a GET; a probe not answered in `timeout` seconds (a stalled event loop) raises."""
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                session.get(url) as response):
        return response.status, await response.text()


async def until_ready(health_url: str, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while (await get(health_url + "readyz"))[0] != 200:
        assert time.monotonic() < deadline, "never ready again after the fault cleared"
        await asyncio.sleep(0.25)


async def run_flowbot(shared_data: Path, data_dir: Path, fault: Fault | None) -> dict[str, object]:
    """`flowbot run` on the tape with `fault` made while it plays; what it stored and alerted, and what it said."""
    live, stamps = live_btc_tape(shared_data)
    fake = FakeBinance(live, rate=RATE)
    await fake.start()
    env = {
        **os.environ, "SYMBOLS": "BTCUSDT", "BINANCE_WS_URL": fake.ws_url, "BINANCE_REST_URL": fake.rest_url,
        "DATA_DIR": str(data_dir), "WINDOW_DURATION": "1", "WINDOW_GRACE": "1", "FLUSH_INTERVAL": "1",
        "WHALE_MIN_NOTIONAL": "2000", "WHALE_PERCENTILE": "0", "SIGNAL_COOLDOWN": "0", "LOG_LEVEL": "WARNING",
        "HEALTH_PORT": "0",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowbot.cli", "run", env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    seen: dict[str, object] = {}
    try:
        line = ""
        while "/healthz" not in line:
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        health_url = line.rsplit(" ", 1)[-1].strip()
        while fake.open_connections() < 1:
            await asyncio.sleep(0.05)
        fake.play()
        if fault is not None:
            await asyncio.sleep(2.0)  # some windows and signals stored before the fault
            seen = await fault(health_url)
        await fake.wait_played()
        await asyncio.sleep(max(0.0, stamps[-1] / 1000 + 3.5 - time.time()))  # the last window closed and flushed
        await until_ready(health_url)
        await asyncio.sleep(1.5)  # a flush and a delivery round after the recovery
        seen["metrics"] = (await get(health_url + "metrics"))[1]
        process.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await fake.close()
    with sqlite3.connect(data_dir / "flowbot.db") as db:  # signals as (kind, ms after the tape's start)
        signals = [(kind, start - stamps[0]) for kind, start in db.execute(
            "select kind, window_start from signals order by rowid")]
        alerted = {(kind, start - stamps[0]) for kind, start in db.execute(
            "select a.kind, a.window_start from signals a join outbox_signals s on s.signal_id = a.id"
            " join outbox o on o.id = s.outbox_id where o.platform = 'console' and o.state = 'sent'")}
        (pending,) = db.execute("select count(*) from outbox where state != 'sent'").fetchone()
    stored = pq.read_table(data_dir / "features").to_pylist()
    return {**seen, "returncode": process.returncode, "stderr": stderr.decode(), "out": stdout.decode(),
            "trades": sum(row["trade_count"] for row in stored), "windows": len(stored), "signals": signals,
            "alerted": alerted, "tape": len(live), "unsent": pending}


@pytest.fixture(scope="module")
def without_fault(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return asyncio.run(run_flowbot(shared_data, tmp_path_factory.mktemp("no-fault"), None))


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({done.stderr.decode().strip()}): the fault needs it")


def same_as_without_fault(run: dict[str, object], baseline: dict[str, object]) -> None:
    assert run["returncode"] == 0, run["stderr"]
    assert baseline["trades"] == baseline["tape"]  # the comparison means something: nothing lost without a fault
    assert run["trades"] == run["tape"]
    assert run["windows"] == baseline["windows"]
    assert baseline["signals"] and sorted(run["signals"]) == sorted(baseline["signals"])
    assert run["alerted"] == set(run["signals"]) and run["unsent"] == 0  # every signal alerted once it cleared
    assert "Traceback" not in str(run["stderr"]).split("stopped")[-1]


def test_a_read_only_feature_store_for_a_while_loses_nothing(shared_data, tmp_path, without_fault) -> None:
    features = tmp_path / "features"
    mount_tmpfs(features, "16m")

    async def read_only(health_url: str) -> dict[str, object]:
        subprocess.run(["mount", "-o", "remount,ro", str(features)], check=True)
        await asyncio.sleep(4.0)
        during = await get(health_url + "readyz")
        alive = await get(health_url + "healthz")
        subprocess.run(["mount", "-o", "remount,rw", str(features)], check=True)
        return {"readyz": during, "healthz": alive}

    try:
        run = asyncio.run(run_flowbot(shared_data, tmp_path, read_only))
    finally:
        subprocess.run(["umount", "-l", str(features)], check=False)
    status, body = run["readyz"]  # type: ignore[misc]
    assert status == 503 and "feature store" in body and "Read-only file system" in body
    assert run["healthz"][0] == 200  # type: ignore[index]
    assert "flowbot_housekeeping_errors_total" in str(run["metrics"])
    same_as_without_fault(run, without_fault)


def test_a_full_disk_for_a_while_loses_nothing(shared_data, tmp_path, without_fault) -> None:
    data_dir = tmp_path / "data"
    mount_tmpfs(data_dir, "24m")

    async def full(health_url: str) -> dict[str, object]:
        filler = data_dir / "filler"
        with filler.open("wb") as out, pytest.raises(OSError):
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        await asyncio.sleep(4.0)
        during = await get(health_url + "readyz")
        filler.unlink()
        return {"readyz": during}

    try:
        run = asyncio.run(run_flowbot(shared_data, data_dir, full))
    finally:
        subprocess.run(["umount", "-l", str(data_dir)], check=False)
    status, body = run["readyz"]  # type: ignore[misc]
    assert status == 503 and "cannot write" in body
    same_as_without_fault(run, without_fault)


LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


def test_a_database_locked_by_another_process_stalls_nothing_and_loses_nothing(
    shared_data, tmp_path, without_fault
) -> None:
    async def locked(health_url: str) -> dict[str, object]:
        locker = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LOCKER, str(tmp_path / "flowbot.db"), "8", stdout=asyncio.subprocess.PIPE
        )
        assert locker.stdout is not None
        assert (await locker.stdout.readline()).strip() == b"locked"
        probes = []
        while locker.returncode is None:  # the loop answers health all along (a stalled loop makes get() raise)
            probes.append(await get(health_url + "healthz"))
            await asyncio.sleep(0.25)
        return {"probes": probes}

    run = asyncio.run(run_flowbot(shared_data, tmp_path, locked))
    probes = run["probes"]
    assert len(probes) > 10 and all(status == 200 for status, _ in probes)  # type: ignore[union-attr]
    same_as_without_fault(run, without_fault)

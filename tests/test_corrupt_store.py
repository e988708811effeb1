"""Issue 14, point 5: a torn or corrupt Parquet file under DATA_DIR/features never blocks `flowbot flow`, `flowbot
ask` or the dashboard's start: it is moved aside, logged and reported by `flowbot doctor`; everything else is read."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from expected_flow import load_csv

from storage.feature_store import FeatureStore

DUMP = "BTCUSDT-aggTrades-2026-01-01.csv"


def flowbot(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DATA_DIR": str(data_dir), "WHALE_PERCENTILE": "0", "WHALE_MIN_NOTIONAL": "20000",
                   "BINANCE_REST_URL": "http://127.0.0.1:9", "BINANCE_WS_URL": "ws://127.0.0.1:9",
                   "BUS_URL": "memory://"}
    return subprocess.run([sys.executable, "-m", "flowbot.cli", *args], env=environment, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def damaged(btc_data_dir: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """A copy of the replayed store with a garbage file and a torn copy of a real file beside the good ones."""
    data_dir = tmp_path / "data"
    shutil.copytree(btc_data_dir, data_dir)
    day = data_dir / "features" / "symbol=BTCUSDT" / "date=2026-01-01"
    good = sorted(day.glob("*.parquet"))[0].read_bytes()
    (day / "zz-garbage.parquet").write_bytes(b"garbage\n")
    (day / "zz-torn.parquet").write_bytes(good[: len(good) // 2])
    return data_dir, ["zz-garbage.parquet", "zz-torn.parquet"]


def test_flow_reads_everything_else_and_moves_the_bad_files_aside(damaged, shared_data: Path) -> None:
    data_dir, bad = damaged
    result = flowbot("flow", "BTCUSDT", "--window", "5m", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    rows = load_csv(shared_data / DUMP)
    end = (rows[-1]["T"] // 5000 + 1) * 5000
    last5 = [r for r in rows if end - 300_000 <= r["T"] < end]
    buy = sum((r["q"] for r in last5 if not r["m"]), Decimal(0))
    assert f"Buy volume: {buy.quantize(Decimal('0.0001')):,}" in result.stdout
    assert f"Trades: {len(last5):,} in " in result.stdout
    aside = data_dir / "features" / "_quarantine" / "symbol=BTCUSDT" / "date=2026-01-01"
    assert sorted(p.name for p in aside.iterdir()) == bad
    for name in bad:
        assert f"moved the unreadable file {data_dir}/features/symbol=BTCUSDT/date=2026-01-01/{name} aside" \
            in result.stderr
    assert FeatureStore(data_dir).read("BTCUSDT").num_rows == len({r["T"] // 5000 for r in rows})


async def test_the_dashboard_starts_and_shows_the_readable_windows(damaged) -> None:
    data_dir, _ = damaged
    environment = {**os.environ, "DATA_DIR": str(data_dir), "HEALTH_PORT": "0", "SYMBOLS": "BTCUSDT",
                   "BUS_URL": "memory://"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowbot.cli", "dashboard", env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        async with aiohttp.ClientSession() as session:
            for _ in range(100):  # until the stored state is loaded: ready
                async with session.get(url + "readyz") as response:
                    if response.status == 200:
                        break
                await asyncio.sleep(0.1)
            async with session.get(url) as response:
                assert response.status == 200
                assert 'id="card-BTCUSDT"' in await response.text()
        assert process.returncode is None
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 10)
    assert b"Traceback" not in stderr and b"moved the unreadable file" in stderr


def test_ask_answers_from_the_readable_files(damaged) -> None:
    data_dir, _ = damaged
    result = flowbot("ask", "is BTC being bought?", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "BTCUSDT" in result.stdout


def test_doctor_reports_the_files_moved_aside(damaged) -> None:
    data_dir, bad = damaged
    result = flowbot("doctor", data_dir=data_dir)
    assert result.returncode == 1
    text = " ".join(result.stdout.split())
    assert "feature store" in text and "2 unreadable file(s) moved aside" in text
    assert all(name in text for name in bad)
    shutil.rmtree(data_dir / "features" / "_quarantine")
    again = " ".join(flowbot("doctor", data_dir=data_dir).stdout.split())
    assert "unreadable" not in again and "windows of 1 symbol(s) read" in again

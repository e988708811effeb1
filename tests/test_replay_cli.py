"""`flowbot replay` and `flowbot flow` as a user runs them, on the real Binance dump."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from expected_flow import expected_windows, load_csv

FLOAT_COLUMNS = ("open", "high", "low", "close", "volume", "buy_volume", "sell_volume", "delta", "cvd")
QUOTE_COLUMNS = ("quote_volume", "buy_quote", "sell_quote", "whale_buy_quote", "whale_sell_quote")


def flowbot(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DATA_DIR": str(data_dir), "WHALE_PERCENTILE": "0", "WHALE_MIN_NOTIONAL": "20000",
                   **env}
    return subprocess.run([sys.executable, "-m", "flowbot.cli", *args], env=environment, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def replayed(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    data_dir = tmp_path_factory.mktemp("replay")
    result = flowbot("replay", str(shared_data / "BTCUSDT-aggTrades-2026-01-01.csv"), "--jsonl", data_dir=data_dir)
    return data_dir, result


def test_replay_writes_every_column_as_computed_from_the_raw_dump(replayed, shared_data: Path) -> None:
    data_dir, result = replayed
    assert result.returncode == 0, result.stderr
    files = sorted((data_dir / "features" / "symbol=BTCUSDT").glob("date=*/*.parquet"))
    assert [f.parent.name for f in files] == ["date=2026-01-01"] * len(files)
    table = pq.read_table(data_dir / "features")  # as tools outside the project read it
    rows = sorted(table.to_pylist(), key=lambda r: r["window_start"])
    expected = expected_windows(load_csv(shared_data / "BTCUSDT-aggTrades-2026-01-01.csv"), 5000, Decimal(20000))
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected, strict=True):
        assert int(row["window_start"].timestamp() * 1000) == want["window_start"]
        assert int(row["window_end"].timestamp() * 1000) == want["window_end"]
        for name in FLOAT_COLUMNS:
            assert row[name] == float(want[name]), name
        for name in QUOTE_COLUMNS:
            assert row[name] == pytest.approx(float(want[name]), rel=1e-15, abs=1e-12), name
        assert row["vwap"] == float(want["vwap"])
        for name in ("trade_count", "whale_count", "first_id", "last_id", "missing_ids"):
            assert row[name] == want[name], name


def test_replay_prints_signals_as_json_lines_and_stores_them(replayed) -> None:
    data_dir, result = replayed
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert lines, "the BTCUSDT dump with a 20,000 USDT whale floor must give whale signals"
    assert all(line["symbol"] == "BTCUSDT" and 1 <= line["severity"] <= 3 for line in lines)
    with sqlite3.connect(data_dir / "flowbot.db") as db:
        stored = {row[0] for row in db.execute("select id from signals")}
    assert stored == {line["id"] for line in lines}
    assert "replayed 5,000 trades" in result.stderr


def test_flow_summarises_the_stored_hour_and_says_how_old_it_is(replayed, shared_data: Path) -> None:
    data_dir, _ = replayed
    result = flowbot("flow", "btcusdt", "--window", "5m", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    rows = load_csv(shared_data / "BTCUSDT-aggTrades-2026-01-01.csv")
    end = (rows[-1]["T"] // 5000 + 1) * 5000
    last5 = [r for r in rows if end - 300_000 <= r["T"] < end]
    buy = sum(r["q"] for r in last5 if not r["m"])
    assert "BTCUSDT flow, last 5m" in text and "days old" in text
    assert f"Buy volume: {buy.quantize(Decimal('0.0001')):,}" in text
    assert "no missing ids" in text
    unknown = flowbot("flow", "NOPEUSDT", data_dir=data_dir)
    assert unknown.returncode == 1 and "No stored flow for NOPEUSDT" in unknown.stdout
    assert "Traceback" not in unknown.stderr


def test_corrupt_rows_are_reported_with_file_and_line_and_the_rest_count(shared_data: Path, tmp_path: Path) -> None:
    source = (shared_data / "BTCUSDT-aggTrades-2026-01-01.csv").read_text().splitlines()
    broken = tmp_path / "BTCUSDT-aggTrades-2026-01-01.csv"
    source[9] = "garbage,row"
    source[19] = source[19].replace(",", ",abc", 1)
    broken.write_text("\n".join(source) + "\n")
    result = flowbot("replay", str(broken), data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert f"{broken}:10" in result.stderr and f"{broken}:20" in result.stderr
    assert "replayed 4,998 trades" in result.stderr and "2 rows skipped" in result.stderr


def test_unreadable_input_gets_a_clear_message(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("hello\n")
    result = flowbot("replay", str(junk), str(tmp_path / "missing.csv"), data_dir=tmp_path / "data")
    assert result.returncode == 1
    assert "cannot replay" in result.stderr and "no such file" in result.stderr
    assert "Traceback" not in result.stderr
    bad_speed = flowbot("replay", str(junk), "--speed", "-1", data_dir=tmp_path / "data")
    assert bad_speed.returncode == 2 and "speed" in bad_speed.stderr


def test_rest_json_needs_a_symbol_and_replays_with_one(shared_data: Path, tmp_path: Path) -> None:
    rest = tmp_path / "xrpeth.json"
    shutil.copy(shared_data / "XRPETH-rest-aggTrades.json", rest)
    result = flowbot("replay", str(rest), "--symbol", "xrpeth", data_dir=tmp_path / "data", WHALE_MIN_NOTIONAL="5")
    assert result.returncode == 0, result.stderr
    assert "replayed 12,477 trades" in result.stderr
    assert (tmp_path / "data" / "features" / "symbol=XRPETH").is_dir()


def test_speed_plays_the_market_faster_by_that_factor(shared_data: Path, tmp_path: Path) -> None:
    import time

    rows = load_csv(shared_data / "BTCUSDT-aggTrades-2026-01-01.csv")
    market_seconds = (rows[-1]["T"] - rows[0]["T"]) / 1000
    speed = market_seconds / 1.5  # the 12 minutes of the dump in about 1.5 s
    started = time.monotonic()
    result = flowbot("replay", str(shared_data / "BTCUSDT-aggTrades-2026-01-01.csv"), "--speed", f"{speed:.3f}",
                     data_dir=tmp_path / "data")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "replayed 5,000 trades" in result.stderr
    assert elapsed >= 1.5 * 0.95  # paced: never faster than the market divided by the speed


def test_bad_symbols_and_an_unusable_data_dir_get_clear_messages(shared_data: Path, tmp_path: Path) -> None:
    flow = flowbot("flow", "../etc", data_dir=tmp_path)
    assert flow.returncode == 2 and "is not a symbol" in flow.stderr
    replay_bad = flowbot("replay", str(shared_data / "XRPETH-rest-aggTrades.json"), "--symbol", "bad/sym",
                         data_dir=tmp_path)
    assert replay_bad.returncode == 2 and "is not a symbol" in replay_bad.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    unusable = flowbot("replay", str(shared_data / "BTCUSDT-rest-aggTrades.json"), data_dir=blocker / "data")
    assert unusable.returncode == 1 and "cannot use DATA_DIR" in unusable.stderr
    for result in (flow, replay_bad, unusable):
        assert "Traceback" not in result.stderr


def test_a_second_replay_loads_the_compiled_kernels_from_disk(shared_data: Path, tmp_path: Path) -> None:
    """NUMBA_CACHE_DIR (the image sets it) holds the compiled kernels: only the first replay compiles them."""
    dump = str(shared_data / "BTCUSDT-aggTrades-2026-01-01.csv")
    cache = {"NUMBA_CACHE_DIR": str(tmp_path / "numba"), "NUMBA_DEBUG_CACHE": "1"}
    first = flowbot("replay", dump, data_dir=tmp_path / "first", **cache)
    second = flowbot("replay", dump, data_dir=tmp_path / "second", **cache)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert "data saved" in first.stdout  # compiled, and written to the cache
    assert "data saved" not in second.stdout and "data loaded" in second.stdout
    assert first.stderr.splitlines()[-1] == second.stderr.splitlines()[-1]  # the same replay report

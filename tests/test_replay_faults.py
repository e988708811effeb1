"""Issue 14, point 6: `flowbot replay` on bad input, as a user runs it: one clear line per bad file, never a
traceback; what was replayed before stays stored; the summary counts the trades accepted."""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import orjson
import pytest
from expected_flow import load_csv

DUMP = "BTCUSDT-aggTrades-2026-01-01.csv"


def flowbot(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DATA_DIR": str(data_dir), "WHALE_PERCENTILE": "0", "WHALE_MIN_NOTIONAL": "20000"}
    return subprocess.run([sys.executable, "-m", "flowbot.cli", "replay", *args], env=environment,
                          capture_output=True, text=True, timeout=120)


def summary(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


def stored_signal_ids(data_dir: Path) -> set[str]:
    with sqlite3.connect(data_dir / "flowbot.db") as db:
        return {row[0] for row in db.execute("select id from signals")}


def test_a_dump_whose_last_line_is_cut_short_replays_the_rows_before_it(tmp_path: Path, shared_data: Path) -> None:
    text = (shared_data / DUMP).read_bytes()
    cut = text.index(b"\n", 20_000) + 30  # the last line loses its last fields and its line end
    torn = tmp_path / DUMP  # the reader's last batch holds only the skipped row
    torn.write_bytes(text[:cut])
    whole_rows = text[:cut].count(b"\n")
    result = flowbot(str(torn), data_dir=tmp_path / "data")
    assert result.returncode == 0
    assert summary(result).startswith(f"replayed {whole_rows:,} trades from 1 file(s)")
    assert f"{DUMP}:{whole_rows + 1}: wrong_column_count" in result.stderr


def test_a_jsonl_chunk_of_only_bad_lines_is_skipped(tmp_path: Path, shared_data: Path) -> None:
    lines = (shared_data / "binance-spot-aggtrade-ws.jsonl").read_bytes().splitlines()
    btc = [line for line in lines if orjson.loads(line)["data"]["s"] == "BTCUSDT"]
    recording = tmp_path / "recording.jsonl"
    recording.write_bytes(b"\n".join([*btc, *[b'{"broken'] * 40_000]) + b"\n")  # a whole reader chunk of bad lines
    result = flowbot(str(recording), "--symbol", "BTCUSDT", data_dir=tmp_path / "data")
    assert result.returncode == 0
    assert summary(result).startswith(f"replayed {len(btc):,} trades from 1 file(s)")
    assert summary(result).endswith("40,000 rows skipped")


@pytest.mark.parametrize("symbol", ["", "../../etc", "btc/usdt"])
def test_a_message_whose_symbol_is_not_one_is_skipped_with_its_line(tmp_path: Path, shared_data: Path,
                                                                    symbol: str) -> None:
    messages = [orjson.loads(line) for line in (shared_data / "binance-spot-aggtrade-ws.jsonl").read_bytes()
                .splitlines()[:50]]
    messages[10]["data"]["s"] = symbol
    recording = tmp_path / "recording.jsonl"
    recording.write_bytes(b"\n".join(orjson.dumps(m) for m in messages) + b"\n")
    result = flowbot(str(recording), data_dir=tmp_path / "data")
    assert result.returncode == 0
    assert f"recording.jsonl:11: bad_symbol: symbol {symbol!r} is not capitals, digits and _" in result.stderr
    trades = sum(1 for m in messages if m["data"].get("e") == "aggTrade") - 1
    assert summary(result).startswith(f"replayed {trades:,} trades from 1 file(s)")
    assert not (tmp_path / "etc").exists() and not list((tmp_path / "data").rglob("*etc*"))


def _corrupt_zip_with_good_rows_first(shared_data: Path, target: Path) -> int:
    """A dump zipped four times over (2 MB of text, more than the format sniffer reads) with its compressed
    bytes damaged near the end: the first copy reads well, then the archive fails."""
    text = (shared_data / DUMP).read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(DUMP, text * 4)
    data = bytearray(buffer.getvalue())
    at = len(data) - 40_000
    data[at:at + 64] = bytes(64)
    target.write_bytes(bytes(data))
    return text.count(b"\n")


def test_a_corrupt_zip_gets_one_line_and_keeps_what_was_read_before(tmp_path: Path, shared_data: Path) -> None:
    archive = tmp_path / DUMP.replace(".csv", ".zip")
    rows = _corrupt_zip_with_good_rows_first(shared_data, archive)
    result = flowbot(str(archive), data_dir=tmp_path / "data")
    assert result.returncode == 1
    assert f"cannot replay {archive}: cannot be read (" in result.stderr
    assert summary(result).startswith(f"replayed {rows:,} trades from 1 file(s)")  # the copies repeat its ids


def test_a_rest_array_cut_mid_way_gets_one_line(tmp_path: Path, shared_data: Path) -> None:
    text = (shared_data / "BTCUSDT-rest-aggTrades.json").read_bytes()
    torn = tmp_path / "BTCUSDT-rest-aggTrades.json"
    torn.write_bytes(text[: len(text) // 2])
    result = flowbot(str(torn), data_dir=tmp_path / "data")
    assert result.returncode == 1
    assert f"cannot replay {torn}: not valid JSON (" in result.stderr
    assert summary(result) == "replayed 0 trades from 1 file(s): 0 windows, 0 signals, 0 rows skipped"


@pytest.mark.parametrize("name", ["trades.csv", "foo[/i]", "[red]x[/red].csv"])
def test_a_file_name_without_a_symbol_asks_for_symbol_and_is_printed_as_is(tmp_path: Path, shared_data: Path,
                                                                           name: str) -> None:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shared_data / DUMP, path)
    result = flowbot(str(path), data_dir=tmp_path / "data")
    assert result.returncode == 1
    assert f"cannot replay {path}: the file name does not tell the symbol; pass --symbol SYMBOL" in result.stderr
    with_symbol = flowbot(str(path), "--symbol", "BTCUSDT", data_dir=tmp_path / "data")
    assert with_symbol.returncode == 0
    assert summary(with_symbol).startswith(f"replayed {len(load_csv(shared_data / DUMP)):,} trades")


def test_signals_printed_before_a_bad_file_stay_stored(tmp_path: Path, shared_data: Path) -> None:
    nameless = tmp_path / "nameless.csv"
    shutil.copy(shared_data / DUMP, nameless)
    archive = tmp_path / "BTCUSDT-aggTrades-2026-01-02.zip"
    _corrupt_zip_with_good_rows_first(shared_data, archive)
    result = flowbot(str(shared_data / DUMP), str(nameless), str(archive), "--jsonl", data_dir=tmp_path / "data")
    printed = {orjson.loads(line)["id"] for line in result.stdout.splitlines()}
    assert printed, "the dump with a 20,000 USDT whale floor gives signals"
    assert stored_signal_ids(tmp_path / "data") == printed
    assert result.returncode == 1 and "Traceback" not in result.stderr


def test_the_summary_counts_trades_accepted_not_rows_read(tmp_path: Path, shared_data: Path) -> None:
    rows = len(load_csv(shared_data / DUMP))
    result = flowbot(str(shared_data / DUMP), str(shared_data / DUMP), data_dir=tmp_path / "data")
    assert result.returncode == 0
    assert summary(result).startswith(f"replayed {rows:,} trades from 2 file(s)")
    assert summary(result).endswith(f"{rows:,} duplicate or out-of-order trades dropped")

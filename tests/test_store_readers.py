"""The feature store reads as it is with the standard tools (pandas, pyarrow datasets, DuckDB, polars), default
options, on a store `flowbot replay` wrote from the real multi-symbol recording."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from core.settings import Settings
from flowbot.replay import replay

RECORDING = "binance-spot-aggtrade-ws.jsonl"
WINDOW_MS = 5000


@pytest.fixture(scope="module")
def features(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DATA_DIR/features of the real multi-symbol recording, replayed."""
    import asyncio

    data_dir = tmp_path_factory.mktemp("readers")
    settings = Settings(_env_file=None, DATA_DIR=str(data_dir))
    asyncio.run(replay([shared_data / RECORDING], settings, out=io.StringIO(), err=Console(file=io.StringIO())))
    return data_dir / "features"


@pytest.fixture(scope="module")
def expected(shared_data: Path) -> dict[str, tuple[int, int, Decimal]]:
    """Per symbol, from the raw messages with Decimal: (windows with trades, trades, base volume)."""
    trades: dict[str, dict[int, dict]] = defaultdict(dict)
    for line in (shared_data / RECORDING).read_bytes().splitlines():
        data = orjson.loads(line)["data"]
        trades[data["s"]][data["a"]] = data
    return {
        symbol: (len({t["T"] // WINDOW_MS for t in by_id.values()}), len(by_id),
                 sum((Decimal(t["q"]) for t in by_id.values()), Decimal(0)))
        for symbol, by_id in trades.items()
    }


def per_symbol(rows: list[tuple[str, int, float]]) -> dict[str, tuple[int, int, float]]:
    """(symbol, trade_count, volume) rows summed per symbol: (rows, trades, volume)."""
    out: dict[str, list] = defaultdict(lambda: [0, 0, 0.0])
    for symbol, count, volume in rows:
        entry = out[str(symbol)]
        entry[0] += 1
        entry[1] += count
        entry[2] += volume
    return {symbol: (rows_, count, volume) for symbol, (rows_, count, volume) in out.items()}


def read_pandas(root: Path) -> list[tuple[str, int, float]]:
    import pandas

    frame = pandas.read_parquet(root)
    return list(zip(frame["symbol"], frame["trade_count"], frame["volume"], strict=True))


def read_pyarrow_dataset(root: Path) -> list[tuple[str, int, float]]:
    import pyarrow.dataset as ds

    table = ds.dataset(root, partitioning="hive").to_table(columns=["symbol", "trade_count", "volume"])
    return list(zip(*(table[name].to_pylist() for name in table.column_names), strict=True))


def read_duckdb(root: Path) -> list[tuple[str, int, float]]:
    import duckdb

    query = "SELECT symbol, trade_count, volume FROM read_parquet(?, hive_partitioning=true)"
    return duckdb.connect().execute(query, [f"{root}/**/*.parquet"]).fetchall()


def read_polars(root: Path) -> list[tuple[str, int, float]]:
    import polars

    frame = polars.scan_parquet(root, hive_partitioning=True).select("symbol", "trade_count", "volume").collect()
    return frame.rows()


@pytest.mark.parametrize("reader", [read_pandas, read_pyarrow_dataset, read_duckdb, read_polars],
                         ids=["pandas", "pyarrow-dataset", "duckdb", "polars"])
def test_a_standard_reader_reads_the_whole_store_as_it_is(
    reader: Callable[[Path], list[tuple[str, int, float]]], features: Path, expected: dict
) -> None:
    got = per_symbol(reader(features))
    assert sorted(got) == sorted(expected)  # every symbol, named by its folder
    for symbol, (windows, trades, volume) in expected.items():
        assert got[symbol][:2] == (windows, trades), symbol
        assert got[symbol][2] == pytest.approx(float(volume), rel=1e-12), symbol

"""/chart rendering on a store replayed from the real BTCUSDT dump, checked against the Parquet files themselves."""

from __future__ import annotations

import asyncio
import io
import math
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from matplotlib.image import imread

from core.settings import Settings
from flowbot.replay import replay
from presentation.charts import MAX_BARS, Chart, render_chart
from storage.feature_store import FeatureStore
from storage.flow_query import FLOW_SPANS_MS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DAY_MS = 86_400_000
MAX_PNG_BYTES = 300_000


@pytest.fixture(scope="module")
def data_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store replayed from the real dump (148 five-second windows, 00:00-00:12 UTC), with whales from 20,000 USDT."""
    folder = tmp_path_factory.mktemp("chart")
    settings = Settings(_env_file=None, DATA_DIR=str(folder), WHALE_MIN_NOTIONAL="20000", WHALE_PERCENTILE="0")
    asyncio.run(replay([shared_data / "BTCUSDT-aggTrades-2026-01-01.csv"], settings, out=io.StringIO()))
    return folder


@pytest.fixture(scope="module")
def windows(data_dir: Path) -> pa.Table:
    return FeatureStore(data_dir).read("BTCUSDT")


@pytest.fixture(scope="module")
def day_dir(windows: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The replayed windows repeated back to back through their whole UTC day (CVD carried on): 17,280 windows."""
    first = windows["window_start"][0].value
    period = windows["window_end"][-1].value - first
    copies = []
    for k in range(-(-DAY_MS // period)):
        copy = windows
        for name in ("window_start", "window_end"):
            shifted = pc.add(copy[name].cast(pa.int64()), k * period).cast(copy.schema.field(name).type)
            copy = copy.set_column(copy.schema.get_field_index(name), name, shifted)
        cvd = pc.add(copy["cvd"], k * windows["cvd"][-1].as_py())
        copies.append(copy.set_column(copy.schema.get_field_index("cvd"), "cvd", cvd))
    day = pa.concat_tables(copies)
    day = day.filter(pc.less(day["window_start"].cast(pa.int64()), first + DAY_MS))
    return store_dir(tmp_path_factory.mktemp("day"), day)


def store_dir(folder: Path, table: pa.Table) -> Path:
    """A data dir holding table as one Parquet file in the store's documented layout (all rows on one UTC day)."""
    day = time.strftime("%Y-%m-%d", time.gmtime(table["window_start"][0].value / 1000))
    partition = folder / "features" / "symbol=BTCUSDT" / f"date={day}"
    partition.mkdir(parents=True)
    pq.write_table(table, partition / "part-0000000000000-000000-00000000.parquet")
    return folder


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk, which must come first."""
    assert png[:8] == PNG_SIGNATURE
    length, kind, width, height = struct.unpack(">I4sII", png[8:24])
    assert (length, kind) == (13, b"IHDR")
    return width, height


def check_png(chart: Chart, size: tuple[int, int] = (1000, 800)) -> None:
    assert png_size(chart.png) == size
    assert len(chart.png) < MAX_PNG_BYTES
    pixels = imread(io.BytesIO(chart.png), format="png")
    assert pixels.shape[:2] == (size[1], size[0])
    assert pixels.std() > 0  # something was drawn


def stored(data_dir: Path) -> pa.Table:
    """Every stored row as written (replay writes each window once), window times as ms."""
    table = pq.read_table(data_dir / "features")
    return pa.table({name: table[name].cast(pa.int64()) if name.startswith("window_") else table[name]
                     for name in ("window_start", "window_end", "whale_count")})


def check_facts(chart: Chart, data_dir: Path, span: str) -> None:
    """Span, window and whale counts of the chart against the Parquet files, computed here with pyarrow."""
    table = stored(data_dir)
    assert chart.end_ms == pc.max(table["window_end"]).as_py()
    assert chart.start_ms == chart.end_ms - FLOW_SPANS_MS[span]
    start = table["window_start"]
    inside = table.filter(pc.and_(pc.greater_equal(start, chart.start_ms), pc.less(start, chart.end_ms)))
    assert chart.windows == inside.num_rows
    whales = inside.filter(pc.greater(inside["whale_count"], 0))
    assert chart.whale_windows == whales.num_rows
    buckets = pc.divide(pc.subtract(whales["window_start"], chart.start_ms), chart.bucket_ms)
    assert chart.whale_markers == len(pc.unique(buckets))
    assert FLOW_SPANS_MS[span] // chart.bucket_ms <= MAX_BARS
    assert chart.bars <= math.ceil(FLOW_SPANS_MS[span] / chart.bucket_ms)


# matplotlib's warnings (not the ResourceWarnings of sockets an earlier test left to the garbage collector, which a
# collection during this test would otherwise turn into its failure)
@pytest.mark.filterwarnings("error::UserWarning", "error::DeprecationWarning", "error::RuntimeWarning")
@pytest.mark.parametrize("span", list(FLOW_SPANS_MS))
def test_each_span_is_a_png_of_the_newest_windows_with_every_whale_window_marked(data_dir: Path, span: str) -> None:
    chart = render_chart(FeatureStore(data_dir), "BTCUSDT", span)
    assert chart is not None and (chart.symbol, chart.span) == ("BTCUSDT", span)
    check_png(chart)
    check_facts(chart, data_dir, span)
    assert chart.whale_windows > 0
    if chart.bucket_ms == 5_000:  # one window per bar: one marker per whale window
        assert chart.whale_markers == chart.whale_windows
        assert chart.bars == chart.windows


def test_a_full_day_is_resampled_to_at_most_300_bars(day_dir: Path) -> None:
    store = FeatureStore(day_dir)
    chart = render_chart(store, "BTCUSDT", "24h")
    assert chart is not None
    check_png(chart)
    check_facts(chart, day_dir, "24h")
    assert chart.windows == DAY_MS // 5_000
    assert chart.bucket_ms == 300_000 and chart.bars == 288


def test_the_size_is_the_one_asked_for(data_dir: Path) -> None:
    chart = render_chart(FeatureStore(data_dir), "BTCUSDT", "15m", size=(640, 480))
    assert chart is not None
    check_png(chart, (640, 480))


def zero_volume(table: pa.Table) -> pa.Table:
    for name in ("volume", "quote_volume", "buy_volume", "sell_volume", "buy_quote", "sell_quote", "delta", "cvd",
                 "whale_buy_quote", "whale_sell_quote", "whale_count"):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, pa.array([0] * table.num_rows, table.schema.field(name).type))
    return table


EDGE_CASES = {
    "one window": lambda t: t.slice(0, 1),
    "a 5-minute gap": lambda t: pa.concat_tables([t.slice(0, 20), t.slice(80)]),
    "no whales": lambda t: t.filter(pc.equal(t["whale_count"], 0)),
    "all-zero volume": zero_volume,
}


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_sparse_and_quiet_stores_still_render(case: str, windows: pa.Table, tmp_path: Path) -> None:
    data_dir = store_dir(tmp_path, EDGE_CASES[case](windows))
    chart = render_chart(FeatureStore(data_dir), "BTCUSDT", "1h")
    assert chart is not None
    check_png(chart)
    check_facts(chart, data_dir, "1h")


def test_unknown_symbol_gives_none_and_unknown_span_a_clear_error(data_dir: Path) -> None:
    store = FeatureStore(data_dir)
    assert render_chart(store, "ETHUSDT", "1h") is None
    with pytest.raises(ValueError, match=r"unknown chart span '2h': use one of 5m, 15m, 1h, 4h, 24h"):
        render_chart(store, "BTCUSDT", "2h")


def test_charts_drawn_in_parallel_threads_are_the_ones_drawn_alone(data_dir: Path) -> None:
    store = FeatureStore(data_dir)
    alone = {span: render_chart(store, "BTCUSDT", span) for span in ("15m", "1h")}
    with ThreadPoolExecutor(4) as pool:
        charts = list(pool.map(lambda span: render_chart(store, "BTCUSDT", span), ["15m", "1h"] * 2))
    assert charts == [alone["15m"], alone["1h"]] * 2

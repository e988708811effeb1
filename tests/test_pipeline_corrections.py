"""Live window closing by grace time, and corrections when a trade arrives after its window was written."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
from expected_flow import columns, expected_windows, load_csv

from core.events import WindowClosed
from core.settings import Settings
from engine.analysis.pipeline import FlowPipeline
from engine.bus import InMemoryBus
from flowbot.analysis_config import pipeline_config
from storage.feature_store import FeatureStore


def test_a_trade_after_its_window_closed_corrects_that_row_and_the_cvd_after_it(shared_data, tmp_path: Path) -> None:
    rows = load_csv(shared_data / "BTCUSDT-aggTrades-2026-01-01.csv")
    settings = Settings(_env_file=None, DATA_DIR=str(tmp_path), WHALE_PERCENTILE="0", WHALE_MIN_NOTIONAL="20000",
                        WINDOW_GRACE="2")
    bus = InMemoryBus()
    closed = bus.subscribe(WindowClosed, maxsize=100_000)
    store = FeatureStore(tmp_path)
    pipeline = FlowPipeline(pipeline_config(settings), bus, store=store)
    cols = columns(rows)
    # a window with several trades: stream up to its middle, let the grace period close it, then the rest arrives
    starts = [r["T"] // 5000 * 5000 for r in rows]
    target = next(s for s in starts if starts.count(s) >= 6 and s > starts[100])
    middle = starts.index(target) + 3
    pipeline.on_columns(cols.take(0, middle))
    pipeline.close_to_watermarks({"BTCUSDT": target + 5000 + 2000})
    assert pipeline.builders["BTCUSDT"].closed_through == target + 5000
    pipeline.on_columns(cols.take(middle, len(rows)))
    pipeline.finish()
    store.close()

    assert pipeline.corrections == 1
    revisions = [e.revision for e in (closed.get_nowait() for _ in range(closed.depth))]
    assert max(revisions) == 1
    table = pq.read_table(tmp_path / "features")
    got = sorted(table.to_pylist(), key=lambda r: r["window_start"])
    expected = expected_windows(rows, 5000, Decimal(20000))
    assert len(got) == len(expected)  # one row per window after the correction
    for row, want in zip(got, expected, strict=True):
        assert int(row["window_start"].timestamp() * 1000) == want["window_start"]
        for name in ("open", "high", "low", "close", "volume", "buy_volume", "sell_volume", "delta", "cvd"):
            assert row[name] == float(want[name]), (name, row["window_start"])
        assert row["trade_count"] == want["trade_count"]


def test_grace_closing_waits_while_the_feed_is_not_whole(shared_data, tmp_path: Path) -> None:
    rows = load_csv(shared_data / "BTCUSDT-aggTrades-2026-01-01.csv")[:50]
    settings = Settings(_env_file=None, DATA_DIR=str(tmp_path), WINDOW_GRACE="2")
    pipeline = FlowPipeline(pipeline_config(settings), InMemoryBus())
    pipeline.on_columns(columns(rows))
    last_end = rows[-1]["T"] // 5000 * 5000 + 5000
    pipeline.close_to_watermarks({})  # connection down or a gap backfilling: no watermark for the symbol
    assert pipeline.builders["BTCUSDT"].open_window_start is not None
    pipeline.close_to_watermarks({"BTCUSDT": last_end + 1_000})  # not yet past the grace period
    assert pipeline.builders["BTCUSDT"].open_window_start is not None
    pipeline.close_to_watermarks({"BTCUSDT": last_end + 2_000})
    assert pipeline.builders["BTCUSDT"].open_window_start is None

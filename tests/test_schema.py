"""The store's columns are declared once (core/schema.py): the writers, the file schema and the README follow it."""

from __future__ import annotations

import re
from pathlib import Path

from core.features import WindowFeatures
from core.schema import FEATURE_COLUMNS, STORED_SCHEMA
from engine.analysis.window_batch import WindowBatch
from storage import feature_store

README = Path(__file__).resolve().parent.parent / "README.md"
ROW = re.compile(r"^\s*\| `(\w+)` \| (.+?) \| (.+?) \|$")

WINDOW = WindowFeatures(
    symbol="BTCUSDT", window_start=1_700_000_000_000, window_end=1_700_000_005_000, open=4_200_000_000_000,
    high=4_200_100_000_000, low=4_199_900_000_000, close=4_200_050_000_000, volume=300_000_000,
    quote_volume=126_001_500_000_000_000_000, buy_volume=200_000_000, sell_volume=100_000_000,
    buy_quote=84_001_000_000_000_000_000, sell_quote=42_000_500_000_000_000_000, delta=100_000_000,
    cvd=250_000_000, trade_count=12, whale_count=1, whale_buy_quote=84_001_000_000_000_000_000,
    whale_sell_quote=0, first_id=100, last_id=111, missing_ids=0,
    whale_threshold=50_000_000_000_000_000_000, burst=False, burst_ratio=1.5,
)


def test_the_readme_lists_the_schema() -> None:
    data = README.read_text().split("\n## Data\n", 1)[1].split("\n## ", 1)[0]
    documented = [match.groups() for line in data.splitlines() if (match := ROW.match(line))]
    assert documented == [(c.name, c.unit.value, c.doc) for c in STORED_SCHEMA], "README.md's Data table: regenerate"


def test_the_file_schema_is_the_declared_one() -> None:
    assert feature_store.SCHEMA.names == [column.name for column in STORED_SCHEMA]


def test_every_writer_writes_the_declared_columns() -> None:
    assert tuple(WINDOW.row()) == FEATURE_COLUMNS
    assert set(WindowBatch.from_features("BTCUSDT", [WINDOW]).parquet_columns()) == set(FEATURE_COLUMNS)
    assert set(feature_store._row_columns([WINDOW], [0])) == {column.name for column in STORED_SCHEMA}

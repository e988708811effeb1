"""The feature store's columns, declared once: name, unit (which fixes the stored type and the scale), meaning.
The writers, the readers, the dashboard and the README's Data section all follow this list, in this order."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

PRICE_SCALE = 10**8  # prices, quantities, delta, cvd: integers of 1e-8
QUOTE_SCALE = 10**16  # price x quantity sums: integers of 1e-16


class Unit(Enum):
    """How a column is stored (its Parquet type) and what its exact in-memory integers are scaled by."""

    SYMBOL = "string, the symbol= folder"  # a hive partition key: not in the files, every reader adds it
    TIME = "timestamp[ms, UTC]"
    PRICE = "float64, exact 1e-8"  # an integer of 1e-8 in memory
    QUOTE = "float64, exact 1e-16"  # an integer of 1e-16 in memory
    COUNT = "int64"
    FLAG = "bool"
    RATIO = "float64"

    @property
    def scale(self) -> int:
        """What the exact in-memory integer is divided by when written (1 for columns stored as they are)."""
        return {Unit.PRICE: PRICE_SCALE, Unit.QUOTE: QUOTE_SCALE}.get(self, 1)


@dataclass(frozen=True, slots=True)
class Column:
    """One stored column; `derived` ones are computed when written, not fields of WindowFeatures."""

    name: str
    unit: Unit
    doc: str
    derived: bool = False
    nullable: bool = False  # futures-only columns: null on spot (and where a window had none of that data)


FEATURE_SCHEMA: tuple[Column, ...] = (
    Column("symbol", Unit.SYMBOL, "the market, e.g. BTCUSDT (readers take it from the folder name)"),
    Column("window_start", Unit.TIME, "the window's first millisecond"),
    Column("window_end", Unit.TIME, "the millisecond after the window"),
    Column("open", Unit.PRICE, "price of the window's first trade"),
    Column("high", Unit.PRICE, "highest trade price"),
    Column("low", Unit.PRICE, "lowest trade price"),
    Column("close", Unit.PRICE, "price of the window's last trade"),
    Column("volume", Unit.PRICE, "base quantity traded"),
    Column("quote_volume", Unit.QUOTE, "quote amount traded (sum of price x quantity)"),
    Column("buy_volume", Unit.PRICE, "base quantity of buyer-aggressor trades"),
    Column("sell_volume", Unit.PRICE, "base quantity of seller-aggressor trades"),
    Column("buy_quote", Unit.QUOTE, "quote amount of buyer-aggressor trades"),
    Column("sell_quote", Unit.QUOTE, "quote amount of seller-aggressor trades"),
    Column("delta", Unit.PRICE, "buy_volume - sell_volume"),
    Column("cvd", Unit.PRICE, "running sum of delta over the symbol's windows of the same UTC day, this one included"),
    Column("vwap", Unit.PRICE, "quote_volume / volume, rounded half-even to 1e-8 (0 without volume)", derived=True),
    Column("trade_count", Unit.COUNT, "trades in the window"),
    Column("whale_count", Unit.COUNT, "trades of at least whale_threshold notional"),
    Column("whale_buy_quote", Unit.QUOTE, "quote amount of buyer-aggressor whale trades"),
    Column("whale_sell_quote", Unit.QUOTE, "quote amount of seller-aggressor whale trades"),
    Column("first_id", Unit.COUNT, "first trade id of the window"),
    Column("last_id", Unit.COUNT, "last trade id of the window"),
    Column("missing_ids", Unit.COUNT, "trade ids between first_id and last_id that never arrived"),
    Column("whale_threshold", Unit.QUOTE, "notional a trade needed to count as a whale in this window"),
    Column("burst", Unit.FLAG, "trade_count reached BURST_FACTOR x the rolling baseline"),
    Column("burst_ratio", Unit.RATIO, "trade_count / rolling baseline (0 while there is no baseline)"),
    Column("liq_long_quote", Unit.QUOTE, "USD-M: notional (avg price x filled qty) of SELL liquidation orders, longs "
           "forced out; a lower bound (Binance pushes at most one liquidation per symbol per second); null on spot",
           nullable=True),
    Column("liq_short_quote", Unit.QUOTE, "USD-M: notional of BUY liquidation orders, shorts forced out; a lower "
           "bound; null on spot", nullable=True),
    Column("liq_count", Unit.COUNT, "USD-M: liquidation orders pushed in the window; null on spot", nullable=True),
    Column("mark_price", Unit.PRICE, "USD-M: mark price of the window's last markPriceUpdate; null on spot",
           nullable=True),
    Column("funding_rate", Unit.PRICE, "USD-M: funding rate of that update (signed); null on spot", nullable=True),
    Column("next_funding_time", Unit.TIME, "USD-M: next funding time of that update; null on spot", nullable=True),
    Column("open_interest", Unit.PRICE, "USD-M: open interest (base units) last known at the window's end (REST, "
           "every OI_POLL_INTERVAL s); null on spot", nullable=True),
)
REVISION = Column("revision", Unit.COUNT, "a late trade rewrites its window with a higher revision; readers keep it")
STORED_SCHEMA: tuple[Column, ...] = (*FEATURE_SCHEMA, REVISION)
FEATURE_COLUMNS: tuple[str, ...] = tuple(column.name for column in FEATURE_SCHEMA)
# What a Parquet file holds: the partition key lives in the folder name only, so that every hive reader (pyarrow's
# dataset with default options, pandas, DuckDB, polars) gets one symbol column, of the type it infers for folders.
FILE_SCHEMA: tuple[Column, ...] = tuple(column for column in STORED_SCHEMA if column.unit is not Unit.SYMBOL)


NULLABLE_COLUMNS: tuple[Column, ...] = tuple(c for c in FEATURE_SCHEMA if c.nullable)


def feature_fields(*units: Unit) -> tuple[str, ...]:
    """Names of the trade columns of these units that are WindowFeatures fields (not derived, never null)."""
    return tuple(c.name for c in FEATURE_SCHEMA if c.unit in units and not c.derived and not c.nullable)

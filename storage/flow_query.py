"""Flow summaries read back from the feature store, for /flow, `flowbot flow` and the AI analyst."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from storage.feature_store import FeatureStore
from storage.spans import FLOW_SPANS_MS


def _dec(value: float) -> Decimal:
    """A stored float back to the decimal it was written from (amounts are exact to 1e-8 before writing)."""
    return Decimal(repr(value))


@dataclass(frozen=True)
class FlowReport:
    """What the store says about one symbol over one span that ends at its newest stored window."""

    symbol: str
    span: str
    start_ms: int
    end_ms: int
    windows: int
    trades: int
    open: Decimal
    close: Decimal
    high: Decimal
    low: Decimal
    buy_volume: Decimal
    sell_volume: Decimal
    delta: Decimal
    cvd: Decimal
    vwap: Decimal
    quote_volume: Decimal
    whale_count: int
    whale_buy_quote: Decimal
    whale_sell_quote: Decimal
    bursts: int
    missing_ids: int
    first_id: int
    last_id: int
    liq_long_quote: Decimal | None = None  # USD-M only; lower bounds (at most one order per symbol per second)
    liq_short_quote: Decimal | None = None
    liq_count: int | None = None
    open_interest_first: Decimal | None = None  # the span's first and last known open interest (base units)
    open_interest_last: Decimal | None = None
    funding_rate: Decimal | None = None  # the span's last funding rate, with its mark price and next funding
    mark_price: Decimal | None = None
    next_funding_ms: int | None = None

    @property
    def price_change_pct(self) -> Decimal:
        return ((self.close - self.open) * 100 / self.open).quantize(Decimal("0.01")) if self.open else Decimal(0)

    @property
    def volume(self) -> Decimal:
        return self.buy_volume + self.sell_volume


def _sum(table: pa.Table, column: str) -> Decimal:
    return sum((_dec(v) for v in table.column(column).to_pylist()), Decimal(0))


def latest_span(store: FeatureStore, symbol: str, span: str) -> tuple[int, int, pa.Table] | None:
    """(start, end, rows) of the `span` ending at the symbol's newest stored window; None if nothing is stored."""
    end = store.latest_window_end(symbol)
    if end is None:
        return None
    start = end - FLOW_SPANS_MS[span]
    table = store.read(symbol, start, end)
    return (start, end, table) if table.num_rows else None


def flow_report(store: FeatureStore, symbol: str, span: str) -> FlowReport | None:
    """The flow over `span` ending at the symbol's newest stored window, or None if nothing is stored."""
    found = latest_span(store, symbol, span)
    if found is None:
        return None
    start, end, all_rows = found
    traded = all_rows.filter(pc.greater(all_rows.column("trade_count"), 0))  # not the liquidation-only windows
    table = traded if traded.num_rows else all_rows
    liquidations = all_rows.filter(pc.is_valid(all_rows.column("liq_count")))
    interest = all_rows.column("open_interest").drop_null()
    marks = all_rows.filter(pc.is_valid(all_rows.column("mark_price")))
    volume = _sum(table, "volume")
    quote = _sum(table, "quote_volume")
    column = table.column
    return FlowReport(
        symbol=symbol, span=span, start_ms=start, end_ms=end, windows=all_rows.num_rows,
        trades=int(pc.sum(column("trade_count")).as_py()),
        open=_dec(column("open")[0].as_py()), close=_dec(column("close")[-1].as_py()),
        high=_dec(pc.max(column("high")).as_py()), low=_dec(pc.min(column("low")).as_py()),
        buy_volume=_sum(table, "buy_volume"), sell_volume=_sum(table, "sell_volume"),
        delta=_sum(table, "delta"), cvd=_dec(column("cvd")[-1].as_py()),
        vwap=(quote / volume).quantize(Decimal("0.01")) if volume else Decimal(0),
        quote_volume=quote, whale_count=int(pc.sum(column("whale_count")).as_py()),
        whale_buy_quote=_sum(table, "whale_buy_quote"), whale_sell_quote=_sum(table, "whale_sell_quote"),
        bursts=int(pc.sum(pc.cast(column("burst"), pa.int64())).as_py()),
        missing_ids=int(pc.sum(column("missing_ids")).as_py()),
        first_id=int(column("first_id")[0].as_py()), last_id=int(column("last_id")[-1].as_py()),
        liq_long_quote=_sum(liquidations, "liq_long_quote") if liquidations.num_rows else None,
        liq_short_quote=_sum(liquidations, "liq_short_quote") if liquidations.num_rows else None,
        liq_count=int(pc.sum(liquidations.column("liq_count")).as_py()) if liquidations.num_rows else None,
        open_interest_first=_dec(interest[0].as_py()) if len(interest) else None,
        open_interest_last=_dec(interest[-1].as_py()) if len(interest) else None,
        funding_rate=_dec(marks.column("funding_rate")[-1].as_py()) if marks.num_rows else None,
        mark_price=_dec(marks.column("mark_price")[-1].as_py()) if marks.num_rows else None,
        next_funding_ms=int(marks.column("next_funding_time")[-1].cast(pa.int64()).as_py()) if marks.num_rows else None,
    )

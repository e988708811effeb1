"""Window features: the order-flow numbers of one symbol over one window, exact until written."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.schema import FEATURE_SCHEMA, PRICE_SCALE, QUOTE_SCALE, Column

# The scales are declared with the stored units (core/schema.py); most code reads them here, with the features.
__all__ = ["PRICE_SCALE", "QUOTE_SCALE", "WindowFeatures", "exact_vwap", "vwap_float"]


@dataclass(frozen=True, slots=True)
class WindowFeatures:
    """One symbol's window [window_start, window_end) in ms; amounts are exact scaled integers."""

    symbol: str
    window_start: int
    window_end: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    quote_volume: int  # 1e-16
    buy_volume: int
    sell_volume: int
    buy_quote: int  # 1e-16
    sell_quote: int  # 1e-16
    delta: int
    cvd: int  # running sum of delta over the symbol's windows of the same UTC day, this one included
    trade_count: int
    whale_count: int
    whale_buy_quote: int  # 1e-16
    whale_sell_quote: int  # 1e-16
    first_id: int
    last_id: int
    missing_ids: int
    whale_threshold: int  # notional (1e-16) a trade needed to count as a whale in this window
    burst: bool
    burst_ratio: float  # trade_count / rolling baseline (0 when there is no baseline yet)
    liq_long_quote: int | None = None  # 1e-16; USD-M only (None on spot)
    liq_short_quote: int | None = None  # 1e-16
    liq_count: int | None = None
    mark_price: int | None = None  # 1e-8; USD-M only
    funding_rate: int | None = None  # 1e-8, signed
    next_funding_time: int | None = None  # ms
    open_interest: int | None = None  # 1e-8, base units

    @property
    def vwap(self) -> Decimal:
        """quote_volume / volume, exact to 1e-8 (in price units)."""
        return exact_vwap(self.quote_volume, self.volume)

    def row(self) -> dict[str, Any]:
        """The Parquet row (core/schema.py): floats for amounts (converted only here), ints for counts, ms times."""
        return {column.name: _stored(getattr(self, column.name), column) for column in FEATURE_SCHEMA}


def _stored(value: Any, column: Column) -> Any:
    """A field's value as its column stores it: scaled integers as floats, the derived vwap (a Decimal) as float."""
    if value is None:
        return None
    if column.derived:
        return float(value)
    return value / float(column.unit.scale) if column.unit.scale != 1 else value


def exact_vwap(quote_volume: int, volume: int) -> Decimal:
    """quote_volume (1e-16) / volume (1e-8), exact to 1e-8 (in price units); 0 without volume."""
    if not volume:
        return Decimal(0)
    return (Decimal(quote_volume) / Decimal(volume) / PRICE_SCALE).quantize(Decimal("1e-8"))


def vwap_float(quote_volume: int, volume: int) -> float:
    """float(exact_vwap(...)), by integer rounding where that provably gives the same float (else by Decimal).

    exact_vwap rounds quote_volume / volume to 28 significant digits, then half-even to an integer n (of 1e-8), and
    float() of n * 1e-8 is correctly rounded, as is Python's n / 10**8. With |n| < 1e16 the first rounding keeps 12
    or more decimals, so its error (at most 0.5e-12) cannot move the quotient across or onto a .5 farther than that.
    """
    if volume > 0:
        n, rest = divmod(quote_volume, volume)
        if -(10**16) < n < 10**16 and abs(2 * rest - volume) * 10**12 > volume:
            return (n + (2 * rest > volume)) / PRICE_SCALE
    return float(exact_vwap(quote_volume, volume))

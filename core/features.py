"""Window features: the order-flow numbers of one symbol over one window, exact until written."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

PRICE_SCALE = 10**8  # prices, quantities, delta, cvd: integers of 1e-8
QUOTE_SCALE = 10**16  # price x quantity sums: integers of 1e-16

# Parquet columns, named as tools outside the project read them (symbol may live in the partition path).
FEATURE_COLUMNS = (
    "symbol", "window_start", "window_end", "open", "high", "low", "close", "volume", "quote_volume",
    "buy_volume", "sell_volume", "buy_quote", "sell_quote", "delta", "cvd", "vwap", "trade_count",
    "whale_count", "whale_buy_quote", "whale_sell_quote", "first_id", "last_id", "missing_ids",
    "whale_threshold", "burst", "burst_ratio",
)


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

    @property
    def vwap(self) -> Decimal:
        """quote_volume / volume, exact to 1e-8 (in price units)."""
        return exact_vwap(self.quote_volume, self.volume)

    def row(self) -> dict[str, Any]:
        """The Parquet row: floats for amounts (converted only here), ints for counts and ids, ms times."""
        p, q = float(PRICE_SCALE), float(QUOTE_SCALE)
        return {
            "symbol": self.symbol,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "open": self.open / p,
            "high": self.high / p,
            "low": self.low / p,
            "close": self.close / p,
            "volume": self.volume / p,
            "quote_volume": self.quote_volume / q,
            "buy_volume": self.buy_volume / p,
            "sell_volume": self.sell_volume / p,
            "buy_quote": self.buy_quote / q,
            "sell_quote": self.sell_quote / q,
            "delta": self.delta / p,
            "cvd": self.cvd / p,
            "vwap": float(self.vwap),
            "trade_count": self.trade_count,
            "whale_count": self.whale_count,
            "whale_buy_quote": self.whale_buy_quote / q,
            "whale_sell_quote": self.whale_sell_quote / q,
            "first_id": self.first_id,
            "last_id": self.last_id,
            "missing_ids": self.missing_ids,
            "whale_threshold": self.whale_threshold / q,
            "burst": self.burst,
            "burst_ratio": self.burst_ratio,
        }


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

"""Futures-only records: a liquidation order as Binance pushes it (`forceOrder`), with exact scaled amounts."""

from __future__ import annotations

from typing import NamedTuple


class Liquidation(NamedTuple):
    """One liquidation order (`o` of a forceOrder event); amounts are integers of 1e-8 units, times ms.

    A SELL order closes a long position (longs forced out), a BUY a short one.
    """

    symbol: str
    is_sell: bool
    order_type: str  # o.o, e.g. LIMIT
    time_in_force: str  # o.f, e.g. IOC
    qty: int  # o.q, original quantity
    price: int  # o.p, order price
    avg_price: int  # o.ap, average fill price
    status: str  # o.X, e.g. FILLED
    last_qty: int  # o.l, last filled quantity
    filled_qty: int  # o.z, filled accumulated quantity
    trade_time: int  # o.T
    event_time: int  # E

    @property
    def notional(self) -> int:
        """avg_price x filled_qty in 1e-16 units (exact): the quote amount forced out."""
        return self.avg_price * self.filled_qty


class MarkPrice(NamedTuple):
    """One markPriceUpdate: mark and index price (1e-8), the funding rate (1e-8, signed) and the next funding."""

    symbol: str
    mark_price: int
    index_price: int
    funding_rate: int
    next_funding_time: int  # ms
    event_time: int  # ms


class FundingSettlement(NamedTuple):
    """A settled funding rate (1e-8 fraction, signed) of a symbol at its settlement time (ms): fundingRate dumps."""

    symbol: str
    rate: int
    time: int


class OpenInterest(NamedTuple):
    """Open interest of a symbol (base units, 1e-8) as Binance reported it for a time (ms)."""

    symbol: str
    open_interest: int
    time: int

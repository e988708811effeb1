"""The immutable trade record every part of the engine works on, with exact scaled-integer amounts."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

PRICE_DECIMALS = 8
SCALE = 10**PRICE_DECIMALS
_ZERO_PADS = tuple("0" * n for n in range(PRICE_DECIMALS + 1))


def parse_scaled(text: str) -> int | None:
    """Exact decimal string ("58001.03000000") to an integer of 1e-8 units; None if not a plain decimal."""
    if text[-PRICE_DECIMALS - 1 : -PRICE_DECIMALS] == ".":  # Binance spot always sends 8 decimals
        digits = text.replace(".", "", 1)
        return int(digits) if digits.isdigit() and digits.isascii() else None
    whole, _, frac = text.partition(".")
    if not (whole.isdigit() and whole.isascii()):
        return None
    n = len(frac)
    if n == PRICE_DECIMALS:
        if not (frac.isdigit() and frac.isascii()):
            return None
        return int(whole + frac)
    if n > PRICE_DECIMALS:
        extra = frac[PRICE_DECIMALS:]
        if extra.strip("0") or not (frac.isdigit() and frac.isascii()):
            return None
        return int(whole + frac[:PRICE_DECIMALS])
    if n and not (frac.isdigit() and frac.isascii()):
        return None
    return int(whole + frac + _ZERO_PADS[PRICE_DECIMALS - n])


def scaled_to_decimal(value: int, decimals: int = PRICE_DECIMALS) -> Decimal:
    """Scaled integer back to an exact Decimal."""
    return Decimal(value).scaleb(-decimals)


class Trade(NamedTuple):
    """One trade (or aggregate trade) as Binance printed it; amounts are integers of 1e-8 units."""

    symbol: str
    id: int  # aggregate id on the aggTrade stream, trade id on the trade stream
    first_id: int  # first trade id it covers
    last_id: int  # last trade id it covers
    price: int
    qty: int
    trade_time: int  # ms since the epoch, exchange clock
    event_time: int  # ms since the epoch, exchange clock
    is_sell: bool  # the aggressor sold: Binance `m: true` (buyer was the maker)

    @property
    def side(self) -> str:
        return "sell" if self.is_sell else "buy"

    @property
    def price_decimal(self) -> Decimal:
        return scaled_to_decimal(self.price)

    @property
    def qty_decimal(self) -> Decimal:
        return scaled_to_decimal(self.qty)

    @property
    def notional(self) -> int:
        """price x quantity in 1e-16 units (exact)."""
        return self.price * self.qty

"""Scaled amounts as evidence floats, exact ratios, severity ladders and directions, shared by the kinds."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from core.events import Direction
from core.features import PRICE_SCALE, QUOTE_SCALE
from engine.analysis.context import FlowSummary

EXACT_DECIMALS = 10**28  # integers below this divide exactly at Decimal's default precision (28 digits)
_QUOTE_TO_PRICE = QUOTE_SCALE // PRICE_SCALE


def dec(value: float) -> Decimal:
    """A threshold as the Decimal it reads as (0.7 -> Decimal('0.7'), not the binary float)."""
    return Decimal(str(value))


def price(value: int | Decimal) -> float:
    """A 1e-8 scaled amount (price, volume, delta, cvd) as a float, to 1e-8."""
    if isinstance(value, int) and abs(value) < EXACT_DECIMALS:
        return value / PRICE_SCALE  # already to 1e-8; int / int rounds to the nearest float, as float(Decimal) does
    return float((Decimal(value) / PRICE_SCALE).quantize(Decimal("1e-8")))


def quote(value: int) -> float:
    """A 1e-16 scaled quote amount as a float, to 1e-8."""
    if 0 <= value < EXACT_DECIMALS:  # the Decimal quotient is exact: round it half to even in integers instead
        units, rest = divmod(value, _QUOTE_TO_PRICE)
        units += 2 * rest > _QUOTE_TO_PRICE or (2 * rest == _QUOTE_TO_PRICE and units & 1)
        return units / PRICE_SCALE
    return float((Decimal(value) / QUOTE_SCALE).quantize(Decimal("1e-8")))


def ratio(value: Decimal) -> float:
    """A computed ratio, share or percent as a float, to 1e-6."""
    return float(value.quantize(Decimal("1e-6")))


def pct_change(flow: FlowSummary) -> Decimal:
    """Exact percent change from the span's first open to its last close (0 without an open)."""
    if not flow.open:
        return Decimal(0)
    return Decimal(flow.close - flow.open) * 100 / Decimal(flow.open)


def pct_changes(opens: np.ndarray, closes: np.ndarray) -> np.ndarray:
    """Percent changes as float64 (0 without an open), for pre-filters."""
    safe = np.where(opens > 0, opens, 1)
    return np.where(opens > 0, (closes - opens) * 100.0 / safe, 0.0)


def ladder(value: Decimal | float, level_2: Decimal | float, level_3: Decimal | float) -> int:
    """Severity 3 at or above level_3, 2 at or above level_2, else 1."""
    if value >= level_3:
        return 3
    if value >= level_2:
        return 2
    return 1


def direction_of(buy: int, sell: int) -> Direction:
    """buy if buy > sell, sell if sell > buy, neutral if equal."""
    if buy > sell:
        return Direction.BUY
    if sell > buy:
        return Direction.SELL
    return Direction.NEUTRAL

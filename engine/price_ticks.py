"""A released batch of trades in brief (PriceTick): what the bot's price rules judge, instead of every trade."""

from __future__ import annotations

from collections.abc import Sequence

from core.events import PriceTick
from core.trades import Trade


def price_tick(symbol: str, trades: Sequence[Trade]) -> PriceTick | None:
    """The batch's first, lowest, highest and last price, its last trade's time and id, and its largest notional."""
    if not trades:
        return None
    prices = [trade.price for trade in trades]
    last = trades[-1]
    return PriceTick(
        symbol, prices[0], min(prices), max(prices), last.price, last.trade_time, last.id,
        max(trade.price * trade.qty for trade in trades),
    )

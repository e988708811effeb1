"""A batch of one symbol's trades as numpy columns: the unit the analysis pipeline works on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.trades import Trade

INT = np.int64


@dataclass(frozen=True, slots=True)
class TradeColumns:
    """Trades of one symbol in id order; amounts are exact int64 in 1e-8 units, times in ms."""

    symbol: str
    id: np.ndarray  # record id: aggregate id `a` (aggTrade) or trade id `t` (trade)
    first_id: np.ndarray  # first trade id the record covers
    last_id: np.ndarray  # last trade id the record covers
    price: np.ndarray
    qty: np.ndarray
    time: np.ndarray  # trade time, ms since the epoch
    is_sell: np.ndarray  # bool: the aggressor sold (Binance m: true)

    def __len__(self) -> int:
        return len(self.id)

    @classmethod
    def from_trades(cls, symbol: str, trades: Sequence[Trade]) -> TradeColumns:
        n = len(trades)
        cols = np.array([(t.id, t.first_id, t.last_id, t.price, t.qty, t.trade_time) for t in trades], dtype=INT)
        cols = cols.reshape(n, 6)
        return cls(
            symbol, cols[:, 0].copy(), cols[:, 1].copy(), cols[:, 2].copy(), cols[:, 3].copy(), cols[:, 4].copy(),
            cols[:, 5].copy(), np.fromiter((t.is_sell for t in trades), dtype=bool, count=n),
        )

    @classmethod
    def empty(cls, symbol: str) -> TradeColumns:
        z = np.empty(0, dtype=INT)
        return cls(symbol, z, z, z, z, z, z, np.empty(0, dtype=bool))

    def take(self, start: int, stop: int) -> TradeColumns:
        return TradeColumns(
            self.symbol, self.id[start:stop], self.first_id[start:stop], self.last_id[start:stop],
            self.price[start:stop], self.qty[start:stop], self.time[start:stop], self.is_sell[start:stop],
        )

    def copy(self) -> TradeColumns:
        """Own arrays (a small slice kept from a big batch must not keep the whole batch alive)."""
        return TradeColumns(
            self.symbol, self.id.copy(), self.first_id.copy(), self.last_id.copy(), self.price.copy(),
            self.qty.copy(), self.time.copy(), self.is_sell.copy(),
        )

    def select(self, mask: np.ndarray) -> TradeColumns:
        return TradeColumns(
            self.symbol, self.id[mask], self.first_id[mask], self.last_id[mask], self.price[mask], self.qty[mask],
            self.time[mask], self.is_sell[mask],
        )

    @staticmethod
    def concat(symbol: str, parts: Sequence[TradeColumns]) -> TradeColumns:
        parts = [p for p in parts if len(p)]
        if not parts:
            return TradeColumns.empty(symbol)
        if len(parts) == 1:
            return parts[0]
        return TradeColumns(
            symbol, *(np.concatenate([getattr(p, f) for p in parts]) for f in
                      ("id", "first_id", "last_id", "price", "qty", "time", "is_sell")),
        )

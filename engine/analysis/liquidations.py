"""Liquidations per window: exact sums of each side's notional until the window is written, and what was written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.futures import Liquidation


@dataclass
class LiquidationSums:
    """One window's liquidations: SELL orders (longs forced out) and BUY orders (shorts), notional in 1e-16."""

    long_quote: int = 0
    short_quote: int = 0
    count: int = 0

    def add(self, other: LiquidationSums) -> LiquidationSums:
        return LiquidationSums(self.long_quote + other.long_quote, self.short_quote + other.short_quote,
                               self.count + other.count)


class LiquidationWindows:
    """One symbol's liquidations by window of trade time: pending ones, and the totals already written."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self.pending: dict[int, LiquidationSums] = {}
        self.written: dict[int, LiquidationSums] = {}

    def add(self, orders: Sequence[Liquidation]) -> None:
        for order in orders:
            start = order.trade_time - order.trade_time % self.window_ms
            sums = self.pending.setdefault(start, LiquidationSums())
            if order.is_sell:
                sums.long_quote += order.notional
            else:
                sums.short_quote += order.notional
            sums.count += 1

    def due(self, through_ms: int) -> list[tuple[int, LiquidationSums]]:
        """Pending windows ending at or before through_ms, by start, each with its total so far (written included);
        they count as written from now on."""
        starts = sorted(start for start in self.pending if start + self.window_ms <= through_ms)
        due = []
        for start in starts:
            total = self.written.get(start, LiquidationSums()).add(self.pending.pop(start))
            self.written[start] = total
            due.append((start, total))
        return due

    def forget_before(self, start_ms: int) -> None:
        """Drop the written totals of windows before start_ms (out of the context: never corrected again)."""
        for start in [s for s in self.written if s < start_ms]:
            del self.written[start]

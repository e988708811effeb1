"""Liquidation cascades, judged on each USD-M window's liquidation data as it becomes known (with the window, or
later when Binance's forced orders arrive after it closed): per side, the liquidations of the minute ending with the
window against the symbol's own norm, the liquidation prices showing whether price moved through them."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from core.events import Direction
from engine.analysis.futures_windows import FuturesSums, Prices
from engine.signals.amounts import dec, ladder, price, quote, ratio
from engine.signals.kind import Finding
from engine.signals.kinds.liquidation_cascade import LiquidationCascadeEvidence
from engine.signals.thresholds import SignalThresholds

MINUTE_MS = 60_000
HISTORY_MS = 86_400_000  # the norm is each symbol's last day of liquidation minutes
SIDES = (("longs", "sell"), ("shorts", "buy"))  # SELL orders force longs out (forced selling), BUY orders shorts


@dataclass(slots=True)
class _Side:
    quote: int = 0  # 1e-16
    orders: int = 0
    prices: Prices | None = None

    def add(self, quote_: int, orders: int, prices: Prices | None) -> None:
        self.quote += quote_
        self.orders += orders
        if prices is not None:
            self.prices = prices if self.prices is None else (min(self.prices[0], prices[0]),
                                                              max(self.prices[1], prices[1]))


class LiquidationCascades:
    """Each symbol's recent windows' liquidations and its day of liquidation minutes (the norm), by side."""

    def __init__(self, thresholds: SignalThresholds) -> None:
        self.t = thresholds
        self.windows: dict[str, dict[int, FuturesSums]] = {}  # symbol -> window start -> its liquidation data
        self.minutes: dict[tuple[str, str], dict[int, int]] = {}  # (symbol, side) -> window end -> minute quote
        self.order: dict[tuple[str, str], deque[int]] = {}  # the window ends of `minutes`, oldest first

    def judge(self, symbol: str, start: int, end: int, sums: FuturesSums | None) -> list[Finding]:
        """The cascades the window's minute shows (at most one per side); call again when its data grows."""
        if sums is None or not sums.count:
            return []
        windows = self.windows.setdefault(symbol, {})
        windows[start] = sums
        for old in [s for s in windows if s < end - 2 * MINUTE_MS]:
            del windows[old]
        found = []
        for side, direction in SIDES:
            minute = self._minute(windows, side, end)
            if not minute.orders:
                continue
            norm = self._norm(symbol, side, end)
            self._remember(symbol, side, end, minute.quote)
            finding = self._finding(side, Direction(direction), minute, norm)
            if finding is not None:
                found.append(finding)
        return found

    @staticmethod
    def _minute(windows: dict[int, FuturesSums], side: str, end: int) -> _Side:
        minute = _Side()
        for start, sums in windows.items():
            if end - MINUTE_MS <= start < end:
                if side == "longs":
                    minute.add(sums.long_quote, sums.long_count, sums.long_prices)
                else:
                    minute.add(sums.short_quote, sums.count - sums.long_count, sums.short_prices)
        return minute

    def _norm(self, symbol: str, side: str, end: int) -> int | None:
        """The percentile of the side's minutes seen over the last day, before this window (None: too few)."""
        seen = [q for at, q in self.minutes.get((symbol, side), {}).items() if end - HISTORY_MS <= at < end]
        if len(seen) < self.t.liq_cascade_min_history:
            return None
        seen.sort()
        rank = max(1, math.ceil(self.t.liq_cascade_percentile / 100 * len(seen)))  # nearest rank
        return seen[rank - 1]

    def _remember(self, symbol: str, side: str, end: int, minute_quote: int) -> None:
        key = (symbol, side)
        minutes = self.minutes.setdefault(key, {})
        order = self.order.setdefault(key, deque())
        if end not in minutes:
            order.append(end)
        minutes[end] = minute_quote  # a window judged again keeps its latest minute
        while order and order[0] < end - HISTORY_MS:
            minutes.pop(order.popleft(), None)

    def _finding(self, side: str, direction: Direction, minute: _Side, norm: int | None) -> Finding | None:
        t = self.t
        if norm is None or not norm or minute.orders < t.liq_cascade_min_orders or minute.prices is None:
            return None
        times = Decimal(minute.quote) / Decimal(norm)
        multiple = dec(t.liq_cascade_multiple)
        if times < multiple:
            return None
        (_, first), (_, last) = minute.prices
        move = Decimal((last - first) * 100) / Decimal(first)
        forced = -move if direction == "sell" else move  # longs forced out sell into a falling price
        if forced < dec(t.liq_cascade_min_move_pct):
            return None
        return Finding(
            direction=direction,
            severity=ladder(times, 2 * multiple, 4 * multiple),
            evidence=LiquidationCascadeEvidence(
                side=side, liq_quote_1m=quote(minute.quote), liq_orders_1m=minute.orders, norm_quote=quote(norm),
                times_norm=ratio(times), first_price=price(first), last_price=price(last),
                price_move_pct=ratio(move),
            ),
        )

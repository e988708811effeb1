"""USD-M data per window (liquidations, mark price and funding): kept until the window is written, then remembered
for a while so that a late update rewrites the window whole."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, replace

from core.features import WindowFeatures
from core.futures import Liquidation, MarkPrice, OpenInterest

OPEN_INTEREST_KEPT_MS = 2 * 3_600_000  # values older than this before the newest are dropped (one always stays)


@dataclass(frozen=True, slots=True)
class FuturesSums:
    """One window's futures data: liquidation sums (notional in 1e-16; SELL orders are longs forced out, BUY
    shorts) and the last mark price update (by event time) with its funding."""

    long_quote: int = 0
    short_quote: int = 0
    count: int = 0
    mark: MarkPrice | None = None
    long_count: int = 0
    long_prices: Prices | None = None  # the first and last SELL liquidation, by trade time
    short_prices: Prices | None = None  # the first and last BUY liquidation

    def merged(self, other: FuturesSums) -> FuturesSums:
        """Both windows' data: sums added, the later mark update kept, price paths joined."""
        marks = [m for m in (self.mark, other.mark) if m is not None]
        return FuturesSums(self.long_quote + other.long_quote, self.short_quote + other.short_quote,
                           self.count + other.count, max(marks, key=lambda m: m.event_time) if marks else None,
                           self.long_count + other.long_count, _joined(self.long_prices, other.long_prices),
                           _joined(self.short_prices, other.short_prices))

    def applied(self, features: WindowFeatures, open_interest: int | None = None) -> WindowFeatures:
        """The window with these values in its futures columns (null where the window had none)."""
        mark = self.mark
        return replace(
            features,
            open_interest=open_interest,
            liq_long_quote=self.long_quote if self.count else None,
            liq_short_quote=self.short_quote if self.count else None,
            liq_count=self.count or None,
            mark_price=mark.mark_price if mark else None,
            funding_rate=mark.funding_rate if mark else None,
            next_funding_time=mark.next_funding_time if mark else None,
        )


Prices = tuple[tuple[int, int], tuple[int, int]]  # ((time ms, price 1e-8) first, (time, price) last)


def _joined(a: Prices | None, b: Prices | None) -> Prices | None:
    if a is None or b is None:
        return a or b
    return min(a[0], b[0]), max(a[1], b[1])


class FuturesWindows:
    """One symbol's futures data by window: pending (not written yet) and written (kept for rewrites)."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self.pending: dict[int, FuturesSums] = {}
        self.written: dict[int, FuturesSums] = {}
        self._oi_times: list[int] = []  # open interest values known, ascending by time
        self._oi_values: list[int] = []

    def add_open_interest(self, values: Sequence[OpenInterest]) -> None:
        """Values known (polled, or a history dump replayed ahead of the trades): kept until the windows pass them."""
        for value in values:
            at = bisect.bisect_right(self._oi_times, value.time)
            if at and self._oi_times[at - 1] == value.time:
                self._oi_values[at - 1] = value.open_interest
            else:
                self._oi_times.insert(at, value.time)
                self._oi_values.insert(at, value.open_interest)

    def _forget_open_interest(self, before_ms: int) -> None:
        """Drop the values older than before_ms, except the last of them (it is still the value known then)."""
        drop = min(bisect.bisect_left(self._oi_times, before_ms), len(self._oi_times)) - 1
        if drop > 0:
            del self._oi_times[:drop], self._oi_values[:drop]

    def open_interest_at(self, end_ms: int) -> int | None:
        """The last open interest known for a time before end_ms (a window's end), or None."""
        at = bisect.bisect_left(self._oi_times, end_ms)
        return self._oi_values[at - 1] if at else None

    def apply(self, features: WindowFeatures, sums: FuturesSums | None) -> WindowFeatures:
        """The window with its futures data and the open interest known at its end."""
        return (sums or FuturesSums()).applied(features, self.open_interest_at(features.window_end))

    def _start(self, ms: int) -> int:
        return ms - ms % self.window_ms

    def add_liquidations(self, orders: Sequence[Liquidation]) -> None:
        for order in orders:
            point = (order.trade_time, order.avg_price)
            if order.is_sell:
                sums = FuturesSums(order.notional, 0, 1, long_count=1, long_prices=(point, point))
            else:
                sums = FuturesSums(0, order.notional, 1, short_prices=(point, point))
            self._add(self._start(order.trade_time), sums)

    def add_marks(self, marks: Sequence[MarkPrice]) -> None:
        for mark in marks:
            self._add(self._start(mark.event_time), FuturesSums(mark=mark))

    def _add(self, start: int, sums: FuturesSums) -> None:
        pending = self.pending.get(start)
        self.pending[start] = sums if pending is None else pending.merged(sums)

    def take(self, start: int) -> FuturesSums | None:
        """A window being written now: its whole data (written before included), counted as written; None if none."""
        pending = self.pending.pop(start, None)
        written = self.written.get(start)
        if pending is None:
            return written
        total = pending if written is None else written.merged(pending)
        self.written[start] = total
        return total

    def due(self, through_ms: int) -> list[tuple[int, FuturesSums]]:
        """Pending windows ending at or before through_ms, by start, each with its whole data (see take)."""
        starts = sorted(start for start in self.pending if start + self.window_ms <= through_ms)
        return [(start, sums) for start in starts if (sums := self.take(start)) is not None]

    def forget_before(self, start_ms: int) -> None:
        """Drop what was written for windows before start_ms (out of the context: never rewritten again)."""
        for start in [s for s in self.written if s < start_ms]:
            del self.written[start]
        self._forget_open_interest(start_ms - OPEN_INTEREST_KEPT_MS)

"""USD-M data per window (liquidations, mark price and funding): kept until the window is written, then remembered
for a while so that a late update rewrites the window whole."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from core.features import WindowFeatures
from core.futures import Liquidation, MarkPrice


@dataclass(frozen=True, slots=True)
class FuturesSums:
    """One window's futures data: liquidation sums (notional in 1e-16; SELL orders are longs forced out, BUY
    shorts) and the last mark price update (by event time) with its funding."""

    long_quote: int = 0
    short_quote: int = 0
    count: int = 0
    mark: MarkPrice | None = None

    def merged(self, other: FuturesSums) -> FuturesSums:
        """Both windows' data: sums added, the later mark update kept."""
        marks = [m for m in (self.mark, other.mark) if m is not None]
        return FuturesSums(self.long_quote + other.long_quote, self.short_quote + other.short_quote,
                           self.count + other.count, max(marks, key=lambda m: m.event_time) if marks else None)

    def applied(self, features: WindowFeatures) -> WindowFeatures:
        """The window with these values in its futures columns (null where the window had none)."""
        mark = self.mark
        return replace(
            features,
            liq_long_quote=self.long_quote if self.count else None,
            liq_short_quote=self.short_quote if self.count else None,
            liq_count=self.count or None,
            mark_price=mark.mark_price if mark else None,
            funding_rate=mark.funding_rate if mark else None,
            next_funding_time=mark.next_funding_time if mark else None,
        )


class FuturesWindows:
    """One symbol's futures data by window: pending (not written yet) and written (kept for rewrites)."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self.pending: dict[int, FuturesSums] = {}
        self.written: dict[int, FuturesSums] = {}

    def _start(self, ms: int) -> int:
        return ms - ms % self.window_ms

    def add_liquidations(self, orders: Sequence[Liquidation]) -> None:
        for order in orders:
            long, short = (order.notional, 0) if order.is_sell else (0, order.notional)
            self._add(self._start(order.trade_time), FuturesSums(long, short, 1))

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

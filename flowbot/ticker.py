"""Console output of `flowbot run` until the bots exist: one line per symbol per window, as the pipeline closes it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

from core.features import WindowFeatures
from core.health import FeedHealth
from core.trades import scaled_to_decimal
from engine.analysis.window_batch import WindowBatch

MAX_EMPTY_WINDOWS = 60  # a longer run of windows without trades is printed as one line


class WindowTicker:
    """Prints each symbol's windows once the pipeline has closed them (by event time, as it stores them): the
    window's features, or trades=0 for a window without trades. While the feed is not delivering (connecting,
    reconnecting) a symbol the pipeline has nothing for gets its windows by the wall clock, each saying why."""

    def __init__(
        self,
        symbols: list[str],
        window_s: float,
        health: FeedHealth,
        out: TextIO,
        *,
        closed_through: Callable[[str], int | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.symbols = symbols
        self.window_ms = int(window_s * 1000)
        self.health = health
        self.out = out
        self.closed_through = closed_through
        self.clock = clock
        self._closed: dict[tuple[str, int], WindowFeatures] = {}
        self._first_start: int | None = None  # the first window printed, the same for every symbol
        self._next_start: dict[str, int] = {}  # per symbol, the next window to print

    def add(self, batch: WindowBatch) -> None:
        """Windows the pipeline closed (its on_windows hook)."""
        for features in batch:
            self._closed[(features.symbol, features.window_start)] = features

    def print_closed(self) -> None:
        """Print every window the pipeline has closed since the last call, in time order, then symbol order."""
        lines = []
        marks = {symbol: closed for symbol in self.symbols if (closed := self.closed_through(symbol)) is not None}
        if not self.health.state().ok:  # nothing arrives: the wall clock says which windows went by without data
            now_ms = int(self.clock() * 1000)
            marks.update((symbol, now_ms) for symbol in self.symbols if symbol not in marks)
        if self._first_start is None and marks:
            newest_closed = min(closed - closed % self.window_ms for closed in marks.values()) - self.window_ms
            self._first_start = min([newest_closed, *(start for _, start in self._closed)])
        for symbol, closed in marks.items():
            assert self._first_start is not None
            start = self._next_start.get(symbol, self._first_start)
            while start + self.window_ms <= closed:
                window = self._closed.pop((symbol, start), None)
                if window is None and closed - start > MAX_EMPTY_WINDOWS * self.window_ms:
                    resume = self._resume(symbol, start, closed)
                    if resume - start > MAX_EMPTY_WINDOWS * self.window_ms:  # a long stretch without trades: one line
                        lines.append((start, symbol, self.quiet_line(symbol, start, resume)))
                        start = resume
                        continue
                lines.append((start, symbol, self.line(symbol, start, window)))
                start += self.window_ms
            self._next_start[symbol] = start
        for key in [k for k in self._closed if k[1] < self._next_start.get(k[0], k[1] + 1)]:
            del self._closed[key]  # a late window (the pipeline corrected it): printed as it first was
        for _, _, line in sorted(lines):
            self.out.write(line + "\n")
        self.out.flush()

    def _resume(self, symbol: str, start: int, closed: int) -> int:
        """Where an empty stretch from `start` ends: the symbol's next closed window, else MAX_EMPTY_WINDOWS
        windows before `closed` (so a wall-clock mark far from trade time is never walked window by window)."""
        later = [s for (sym, s) in self._closed if sym == symbol and start < s and s + self.window_ms <= closed]
        tail = closed - closed % self.window_ms - MAX_EMPTY_WINDOWS * self.window_ms
        return min(later) if later else max(start, tail)

    def quiet_line(self, symbol: str, start_ms: int, until_ms: int) -> str:
        def when(ms: int) -> str:
            return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        return f"{when(start_ms)[11:]}Z {symbol:<10} no trades from {when(start_ms)} to {when(until_ms)} UTC"

    def line(self, symbol: str, start_ms: int, window: WindowFeatures | None) -> str:
        when = datetime.fromtimestamp(start_ms / 1000, UTC).strftime("%H:%M:%S")
        health = self.health.symbols.get(symbol)
        lag = "-" if health is None or health.lag_ms is None else f"{health.lag_ms}ms"
        gaps = 0 if health is None else health.gaps_found
        unfilled = 0 if health is None else health.gaps_unfilled
        reconnects = sum(c.reconnects for c in self.health.connections.values())
        trades = volume = buy = 0
        price = "-"
        if window is not None:
            trades, volume, buy = window.trade_count, window.volume, window.buy_volume
            price = f"{scaled_to_decimal(window.close).normalize():f}"
        return (
            f"{when}Z {symbol:<10} trades={trades:<5} volume={scaled_to_decimal(volume).normalize():f} "
            f"buy={scaled_to_decimal(buy).normalize():f} last={price} | lag={lag} gaps={gaps} "
            f"unfilled={unfilled} reconnects={reconnects} {self.health.state().text()}"
        )

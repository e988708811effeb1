"""Console output of `flowbot run` until the bots exist: one line per symbol per window."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from core.health import FeedHealth
from core.trades import Trade, scaled_to_decimal

CLOSE_GRACE_S = 1.0


@dataclass(slots=True)
class WindowTally:
    trades: int = 0
    volume: int = 0
    buy_volume: int = 0
    last_price: int = 0


class WindowTicker:
    """Counts released trades per symbol and window of trade time, and prints each window once it is over."""

    def __init__(
        self,
        symbols: list[str],
        window_s: float,
        health: FeedHealth,
        out: TextIO,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.symbols = symbols
        self.window_ms = int(window_s * 1000)
        self.health = health
        self.out = out
        self.clock = clock
        self._tallies: dict[tuple[str, int], WindowTally] = {}
        self._next_start = self._window_start(int(clock() * 1000))

    def _window_start(self, ms: int) -> int:
        return ms - ms % self.window_ms

    def add(self, symbol: str, trades: list[Trade]) -> None:
        tallies = self._tallies
        for trade in trades:
            key = (symbol, trade.trade_time - trade.trade_time % self.window_ms)
            tally = tallies.get(key)
            if tally is None:
                tally = tallies[key] = WindowTally()
            tally.trades += 1
            tally.volume += trade.qty
            if not trade.is_sell:
                tally.buy_volume += trade.qty
            tally.last_price = trade.price

    def print_closed(self) -> None:
        """Print every window that ended more than a grace period ago."""
        now_ms = int(self.clock() * 1000)
        while self._next_start + self.window_ms + CLOSE_GRACE_S * 1000 <= now_ms:
            start = self._next_start
            for symbol in self.symbols:
                self.out.write(self.line(symbol, start, self._tallies.pop((symbol, start), WindowTally())) + "\n")
            self._next_start += self.window_ms
        for key in [k for k in self._tallies if k[1] < self._next_start]:
            del self._tallies[key]
        self.out.flush()

    def line(self, symbol: str, start_ms: int, tally: WindowTally) -> str:
        when = datetime.fromtimestamp(start_ms / 1000, UTC).strftime("%H:%M:%S")
        health = self.health.symbols.get(symbol)
        lag = "-" if health is None or health.lag_ms is None else f"{health.lag_ms}ms"
        gaps = 0 if health is None else health.gaps_found
        unfilled = 0 if health is None else health.gaps_unfilled
        reconnects = sum(c.reconnects for c in self.health.connections.values())
        price = f"{scaled_to_decimal(tally.last_price).normalize():f}" if tally.trades else "-"
        return (
            f"{when}Z {symbol:<10} trades={tally.trades:<5} volume={scaled_to_decimal(tally.volume).normalize():f} "
            f"buy={scaled_to_decimal(tally.buy_volume).normalize():f} last={price} | lag={lag} gaps={gaps} "
            f"unfilled={unfilled} reconnects={reconnects} {self.health.state().text()}"
        )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.window_ms / 1000 / 2)
            self.print_closed()

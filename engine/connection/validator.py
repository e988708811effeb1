"""The data validator: rules every trade must pass before analysis, each rejection counted by reason."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable

from core.futures import Liquidation, MarkPrice
from core.trades import Trade

log = logging.getLogger(__name__)

SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9_]{0,31}")  # BTCUSDT, 1000PEPEUSDT, BTCUSDT_250328


class TradeValidator:
    """Checks a parsed trade; `check` answers None for a good trade or the reason it is rejected.

    `opened_ms` is when the venue opened: a trade before it is rejected with the reason `too_early`.
    """

    def __init__(
        self,
        *,
        opened_ms: int,
        too_early: str,
        symbols: frozenset[str] | None = None,
        live: bool = True,
        max_clock_skew: float = 60.0,
        clock: Callable[[], float] = time.time,
        rejected: Counter[str] | None = None,
    ) -> None:
        self.opened_ms = opened_ms
        self.too_early = too_early
        self.symbols = symbols
        self.live = live
        self.max_clock_skew_ms = int(max_clock_skew * 1000)
        self.clock = clock
        self.rejected: Counter[str] = rejected if rejected is not None else Counter()
        self._good_symbols: set[str] = set()

    def check(self, trade: Trade) -> str | None:
        if trade.symbol not in self._good_symbols:  # it names files and folders: "" or "../.." must never reach them
            if not SYMBOL.fullmatch(trade.symbol):
                return "bad_symbol"
            self._good_symbols.add(trade.symbol)
        if trade.price <= 0:
            return "non_positive_price"
        if trade.qty <= 0:
            return "non_positive_quantity"
        if trade.trade_time < self.opened_ms or trade.event_time < self.opened_ms:
            return self.too_early
        if self.live:
            latest_ms = int(self.clock() * 1000) + self.max_clock_skew_ms
            if trade.trade_time > latest_ms or trade.event_time > latest_ms:
                return "timestamp_in_future"
        if trade.first_id > trade.last_id:
            return "inconsistent_ids"
        if self.symbols is not None and trade.symbol not in self.symbols:
            return "unknown_symbol"
        return None

    def check_liquidation(self, order: Liquidation) -> str | None:
        """None for a sane liquidation order, else why not: it must have filled at a positive price, in time."""
        if order.avg_price <= 0:
            return "non_positive_price"
        if order.filled_qty <= 0:
            return "non_positive_quantity"
        if order.trade_time < self.opened_ms or order.event_time < self.opened_ms:
            return self.too_early
        if self.live:
            latest_ms = int(self.clock() * 1000) + self.max_clock_skew_ms
            if order.trade_time > latest_ms or order.event_time > latest_ms:
                return "timestamp_in_future"
        if self.symbols is not None and order.symbol not in self.symbols:
            return "unknown_symbol"
        return None

    def check_mark(self, mark: MarkPrice) -> str | None:
        """None for a sane mark price update, else why not."""
        if mark.mark_price <= 0:
            return "non_positive_price"
        if mark.event_time < self.opened_ms:
            return self.too_early
        if self.live and mark.event_time > int(self.clock() * 1000) + self.max_clock_skew_ms:
            return "timestamp_in_future"
        if self.symbols is not None and mark.symbol not in self.symbols:
            return "unknown_symbol"
        return None

    def accept(self, trade: Trade) -> bool:
        """True if the trade passes; otherwise counts and logs why it was dropped."""
        reason = self.check(trade)
        if reason is None:
            return True
        self.reject(reason, f"{trade.symbol} id={trade.id}")
        return False

    def reject(self, reason: str, detail: str = "") -> None:
        """Count a dropped message; the first of each reason is logged with its detail."""
        self.rejected[reason] += 1
        if self.rejected[reason] == 1:
            log.warning("dropped a message (%s) %s; further drops of this kind are counted", reason, detail)

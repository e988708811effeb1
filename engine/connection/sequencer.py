"""Per-symbol sequencing: every id once, in order, with gaps held open until filled or recorded."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from core.events import Gap
from core.health import SymbolHealth
from core.trades import Trade

log = logging.getLogger(__name__)

RECENT_TRADES_KEPT = 4096
RESET_AGE_MS = 600_000  # a lower id this much older than the last trade (or newer at all): a new sequence


class Sequencer:
    """Releases one symbol's records exactly once in id order.

    On an aggregate stream the sequence is the aggregate id (and a record's first trade id must follow
    the previous record's last); on a trade stream it is the trade id, and a record may cover a range of
    trade ids (a part of an aggregate used to fill a gap). Records past a gap are held in `pending` until
    the gap is filled by late or backfilled records, or given up with `skip_gap`, which records it.
    """

    def __init__(
        self,
        symbol: str,
        *,
        by_trade_ids: bool,
        health: SymbolHealth,
        release: Callable[[Trade], None],
        on_gap: Callable[[Sequencer], None],
        on_unfilled: Callable[[Gap], None],
    ) -> None:
        self.symbol = symbol
        self.by_trade_ids = by_trade_ids
        self.health = health
        self._release_trade = release
        self._on_gap = on_gap
        self._on_unfilled = on_unfilled
        self.last: int | None = None  # last released sequence id
        self.last_trade_id: int | None = None
        self.last_trade_time: int | None = None
        self.pending: dict[int, Trade] = {}
        self._pending_max = 0
        self._recent_qty: dict[int, int] = {}
        self._recent_order: deque[int] = deque()

    def span(self, trade: Trade) -> tuple[int, int]:
        return (trade.first_id, trade.last_id) if self.by_trade_ids else (trade.id, trade.id)

    def accept(self, trade: Trade) -> bool:
        """Take a validated record; True if it was new (released now or held behind a gap)."""
        if self.by_trade_ids:
            lo, hi = trade.first_id, trade.last_id
        else:
            lo = hi = trade.id
        last = self.last
        pending = self.pending
        if last is None or lo == last + 1:
            self._release(trade, hi)
            if pending:
                if hi + 1 in pending:
                    self.health.gaps_filled += 1
                self._drain()
            return True
        if lo <= last:
            last_time = self.last_trade_time
            if last_time is not None and (trade.trade_time > last_time or trade.trade_time < last_time - RESET_AGE_MS):
                self._reset(trade)  # a duplicate is never newer than the last trade, nor from long before it
                return True
            self.health.duplicates += 1
            return False
        if lo in pending:
            self.health.duplicates += 1
            return False
        # ahead of a gap: hold it, and keep count of the holes (missing ranges) it opens or closes
        health = self.health
        if self.last_trade_time is not None and trade.trade_time < self.last_trade_time - RESET_AGE_MS:
            health.stale += 1  # a higher id from long before the last trade: not part of this sequence
            return False
        if not pending:
            health.gaps_found += 1
            self._pending_max = hi
            pending[lo] = trade
            self._on_gap(self)
            return True
        if lo > self._pending_max:
            if lo != self._pending_max + 1:
                health.gaps_found += 1
            self._pending_max = hi
        else:
            health.out_of_order += 1
            joins_left = lo - 1 in pending
            joins_right = hi + 1 in pending
            if joins_left and joins_right:
                health.gaps_filled += 1
            elif not joins_left and not joins_right:
                health.gaps_found += 1
        pending[lo] = trade
        return True

    def missing(self) -> tuple[int, int] | None:
        """The first open gap as (first missing id, last missing id), or None."""
        if not self.pending or self.last is None:
            return None
        return self.last + 1, min(self.pending) - 1

    def skip_gap(self, reason: str) -> Gap | None:
        """Give up the first open gap: record it exactly and release what waited behind it."""
        missing = self.missing()
        if missing is None:
            return None
        gap = Gap(self.symbol, missing[0], missing[1], time.time(), reason)
        self.health.gaps_unfilled += 1
        self.health.missing_ids += gap.count
        self._on_unfilled(gap)
        self.last = missing[1]
        self.last_trade_id = None  # the trade ids inside the skipped range are unknown
        self._drain()
        return gap

    def _reset(self, trade: Trade) -> None:
        """Ids and times jumped back (a relisted symbol, a restarted exchange sequence): start afresh."""
        log.warning(
            "%s: sequence restarted: id %d at %d after id %s at %s; open gaps are recorded",
            self.symbol, trade.id, trade.trade_time, self.last, self.last_trade_time,
        )
        self.health.sequence_resets += 1
        while self.pending:
            self.skip_gap("sequence restarted before the gap was filled")
        self.last = None
        self.last_trade_id = None
        self._recent_qty.clear()
        self._recent_order.clear()
        self._release(trade, self.span(trade)[1])

    def fill_from_aggregates(self, aggregates: list[Trade]) -> int:
        """Trade stream: accept the parts of aggregates that cover missing or newer trade ids.

        An aggregate may also cover trades already held; their quantities are subtracted so that the
        record carries exactly the missing trades' quantity. Where a covered trade is no longer known
        the aggregate is not used and the gap stays open (to be recorded, never guessed). Returns how
        many records were accepted.
        """
        accepted = 0
        if self.last is None:
            return accepted
        upper = min(self.pending) - 1 if self.pending else None
        for agg in aggregates:
            lo = max(agg.first_id, self.last + 1)
            hi = agg.last_id if upper is None else min(agg.last_id, upper)
            if lo > hi:
                continue
            known = 0
            for trade_id in range(agg.first_id, agg.last_id + 1):
                if lo <= trade_id <= hi:
                    continue
                qty = self._known_qty(trade_id)
                if qty is None:
                    return accepted
                known += qty
            if agg.qty - known <= 0:
                return accepted
            record = agg._replace(symbol=self.symbol, id=lo, first_id=lo, last_id=hi, qty=agg.qty - known)
            accepted += self.accept(record)
            if hi == upper:
                upper = min(self.pending) - 1 if self.pending else None
        return accepted

    def _known_qty(self, trade_id: int) -> int | None:
        qty = self._recent_qty.get(trade_id)
        if qty is not None:
            return qty
        held = self.pending.get(trade_id)
        return held.qty if held is not None and held.first_id == held.last_id else None

    def _release(self, trade: Trade, hi: int) -> None:
        if (
            not self.by_trade_ids
            and self.last_trade_id is not None
            and trade.first_id > self.last_trade_id + 1
        ):
            gap = Gap(self.symbol, self.last_trade_id + 1, trade.first_id - 1, time.time(), "trade_ids_skipped")
            self.health.gaps_found += 1
            self.health.gaps_unfilled += 1
            self.health.missing_ids += gap.count
            self._on_unfilled(gap)
        self.last = hi
        self.last_trade_id = trade.last_id
        self.last_trade_time = trade.trade_time
        if self.by_trade_ids:
            self._remember(trade)
        self._release_trade(trade)

    def _remember(self, trade: Trade) -> None:
        if trade.first_id != trade.last_id:
            return
        self._recent_qty[trade.first_id] = trade.qty
        self._recent_order.append(trade.first_id)
        if len(self._recent_order) > RECENT_TRADES_KEPT:
            self._recent_qty.pop(self._recent_order.popleft(), None)

    def _drain(self) -> None:
        """Release the held records that now follow on."""
        pending = self.pending
        while pending:
            nxt = pending.pop(self.last + 1, None)  # type: ignore[operator]
            if nxt is None:
                break
            self._release(nxt, self.span(nxt)[1])

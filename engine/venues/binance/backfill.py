"""The REST gap backfill for Binance: aggTrades pages by id (aggTrade stream) or by time, then id (trade stream)."""

from __future__ import annotations

import logging
from typing import Any

from core.trades import Trade
from engine.connection.sequencer import Sequencer
from engine.connection.validator import TradeValidator
from engine.venues.binance.messages import InvalidMessage, rest_row_to_event, trade_from_aggtrade
from engine.venues.binance.rest import MAX_PAGE, BinanceRest, RestError

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000


class BinanceBackfiller:
    """Fills gaps from REST aggTrades; on the trade stream their parts cover exactly the missing trade ids."""

    def __init__(self, rest: BinanceRest, validator: TradeValidator, *, by_trade_ids: bool) -> None:
        self.rest = rest
        self.validator = validator
        self.by_trade_ids = by_trade_ids

    async def fill(self, sequencer: Sequencer, catch_up: set[str]) -> None:
        """Fill open gaps (and catch up after reconnects) from REST until closed or recorded unfilled."""
        symbol = sequencer.symbol
        cursor: int | None = None
        while sequencer.missing() is not None or symbol in catch_up:
            gap = sequencer.missing()
            before = (sequencer.last, len(sequencer.pending))
            try:
                rows = await self._fetch(sequencer, cursor)
            except RestError as exc:
                cursor = None
                if gap is not None:
                    sequencer.skip_gap(f"backfill failed: {exc}")
                else:
                    log.warning("%s: catch-up after reconnect failed: %s", symbol, exc)
                    catch_up.discard(symbol)
                continue
            trades = self._trades_from_rest(symbol, rows)
            if self.by_trade_ids:
                cursor = trades[-1].id + 1 if trades else None
                accepted = sequencer.fill_from_aggregates(trades)
            else:
                end = gap[1] if gap is not None else None  # a gap's backfill fills the gap, nothing past it
                accepted = sum(sequencer.accept(t) for t in trades if end is None or t.id <= end)
            sequencer.health.backfilled += accepted
            progressed = (sequencer.last, len(sequencer.pending)) != before
            if len(rows) == MAX_PAGE and (progressed or cursor is not None):
                continue
            if gap is not None and sequencer.missing() == gap:
                sequencer.skip_gap("not available from REST")
            elif gap is None:
                catch_up.discard(symbol)
            cursor = None

    async def _fetch(self, sequencer: Sequencer, cursor: int | None) -> list[dict[str, Any]]:
        assert sequencer.last is not None
        if not self.by_trade_ids:
            return await self.rest.agg_trades(sequencer.symbol, from_id=sequencer.last + 1)
        if cursor is not None:
            return await self.rest.agg_trades(sequencer.symbol, from_id=cursor)
        start = sequencer.last_trade_time or 0
        return await self.rest.agg_trades(sequencer.symbol, start_time=start, end_time=start + HOUR_MS - 1)

    def _trades_from_rest(self, symbol: str, rows: list[dict[str, Any]]) -> list[Trade]:
        trades = []
        for row in rows:
            try:
                trade = trade_from_aggtrade(rest_row_to_event(row, symbol))
            except InvalidMessage as exc:
                self.validator.reject(exc.reason, f"REST row for {symbol}")
                continue
            if self.validator.accept(trade):
                trades.append(trade)
        return trades

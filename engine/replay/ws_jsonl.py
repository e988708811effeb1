"""Replay input: JSON lines of raw Binance WebSocket messages (combined-stream envelopes or bare events)."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from core.futures import Liquidation, MarkPrice
from core.trades import Trade
from engine.analysis.columns import TradeColumns
from engine.connection.validator import TradeValidator
from engine.replay.batches import ReplayBatch, RowProblem, row_text, trade_reason
from engine.replay.source import BOM, open_replay_file
from engine.venues.binance.messages import (
    InvalidMessage,
    liquidation_from_force_order,
    mark_from_mark_price_update,
    trade_from_aggtrade,
    trade_from_trade,
    unwrap,
)
from engine.venues.binance.rules import binance_validator


def is_stream_event(line: bytes) -> bool:
    """Whether a line is a Binance WebSocket event, bare or in a combined-stream wrapper."""
    try:
        return isinstance(unwrap(orjson.loads(line)).get("e"), str)
    except (orjson.JSONDecodeError, InvalidMessage):
        return False


def read_ws_jsonl(path: Path, symbol: str | None, batch_rows: int) -> Iterator[ReplayBatch]:
    """Batches of a JSON-lines recording of WebSocket messages: per chunk of lines, one batch per symbol."""
    validator = binance_validator(live=False)
    with open_replay_file(path) as f:
        numbered = enumerate(f, 1)
        while chunk := list(islice(numbered, batch_rows)):
            yield from _jsonl_chunk(str(path), chunk, symbol, validator)


def _jsonl_chunk(
    path: str, chunk: list[tuple[int, bytes]], symbol: str | None, validator: TradeValidator
) -> list[ReplayBatch]:
    """One batch per symbol of a chunk of lines; the chunk's problems ride on its first batch."""
    trades: dict[str, list[Trade]] = {}
    liquidations: dict[str, list[Liquidation]] = {}
    marks: dict[str, list[MarkPrice]] = {}
    problems: list[RowProblem] = []
    for line, raw in chunk:
        if not raw.strip():
            continue
        event: dict[str, Any] = {}
        try:
            event = unwrap(orjson.loads(raw.removeprefix(BOM) if line == 1 else raw))
            kind = event.get("e")
            if kind == "aggTrade":
                trade = trade_from_aggtrade(event)
            elif kind == "trade":
                trade = trade_from_trade(event)
            elif kind == "forceOrder":
                order = liquidation_from_force_order(event)
                if symbol is not None and order.symbol != symbol:
                    continue
                code = validator.check_liquidation(order)
                if code is None:
                    liquidations.setdefault(order.symbol, []).append(order)
                    continue
                raise InvalidMessage(code, f"{order.symbol} liquidation at {order.trade_time}")
            elif kind == "markPriceUpdate":
                mark = mark_from_mark_price_update(event)
                if symbol is not None and mark.symbol != symbol:
                    continue
                code = validator.check_mark(mark)
                if code is None:
                    marks.setdefault(mark.symbol, []).append(mark)
                    continue
                raise InvalidMessage(code, f"{mark.symbol} mark price at {mark.event_time}")
            elif kind is None and "result" not in event:  # "result": the reply to a subscribe request
                raise InvalidMessage("missing_field", "'e' (event type)")
            else:
                continue  # another event (serverShutdown, ...) or a request reply
        except orjson.JSONDecodeError as exc:
            reason = f"invalid_json: {exc}"
        except InvalidMessage as exc:
            reason = str(exc)
        else:
            if symbol is not None and trade.symbol != symbol:
                continue
            code = validator.check(trade)
            if code is None:
                trades.setdefault(trade.symbol, []).append(trade)
                continue
            reason = trade_reason(code, trade)
        order_part = event.get("o")
        if symbol is None or (order_part if isinstance(order_part, dict) else event).get("s") in (symbol, None):
            problems.append(RowProblem(path, line, reason, row_text(raw.rstrip(b"\r\n").decode("utf-8", "replace"))))
    batches = [ReplayBatch(TradeColumns.from_trades(s, t), [], liquidations.pop(s, []), marks.pop(s, []))
               for s, t in trades.items()]
    batches += [ReplayBatch(TradeColumns.empty(s), [], orders, marks.pop(s, [])) for s, orders in liquidations.items()]
    batches += [ReplayBatch(TradeColumns.empty(s), [], [], updates) for s, updates in marks.items()]
    if problems:
        if not batches:
            batches.append(ReplayBatch(TradeColumns.empty(symbol or ""), []))
        batches[0].problems = problems
    return batches


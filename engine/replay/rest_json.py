"""Replay input: JSON arrays of Binance REST aggTrades rows (the symbol comes from the file name or the caller)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from core.trades import Trade
from engine.analysis.columns import TradeColumns
from engine.replay.batches import ReplayBatch, ReplayInputError, RowProblem, row_text, trade_reason
from engine.replay.source import BOM, open_replay_file
from engine.venues.binance.messages import InvalidMessage, rest_row_to_event, trade_from_aggtrade
from engine.venues.binance.rules import binance_validator


def _load_json_array(path: Path) -> list[Any]:
    """The whole JSON array of a REST aggTrades file."""
    with open_replay_file(path) as f:
        data = f.read()
    try:
        rows = orjson.loads(data.removeprefix(BOM))
    except orjson.JSONDecodeError as exc:
        raise ReplayInputError(f"{path}: not valid JSON ({exc})") from None
    return rows  # a list: the file was recognised by its opening "[{" or "[]"


def _batches(path: Path, symbol: str, rows: list[Any], batch_rows: int) -> Iterator[ReplayBatch]:
    """Batches of a REST aggTrades array; a problem's `line` is the 1-based element number."""
    validator = binance_validator(live=False)
    for start in range(0, len(rows), batch_rows):
        trades: list[Trade] = []
        problems: list[RowProblem] = []
        for number, row in enumerate(rows[start : start + batch_rows], start + 1):
            try:
                trade = trade_from_aggtrade(rest_row_to_event(row, symbol))
            except InvalidMessage as exc:
                reason = str(exc)
            else:
                code = validator.check(trade)
                if code is None:
                    trades.append(trade)
                    continue
                reason = trade_reason(code, trade)
            problems.append(RowProblem(
                str(path), number, f"{reason} (JSON array element {number})", row_text(orjson.dumps(row).decode())
            ))
        yield ReplayBatch(TradeColumns.from_trades(symbol, trades), problems)


def read_rest_json(path: Path, symbol: str, batch_rows: int) -> Iterator[ReplayBatch]:
    """Batches of `symbol`'s REST aggTrades array; the whole file is loaded (and may fail) before the first."""
    return _batches(path, symbol, _load_json_array(path), batch_rows)

"""Binance's USD-M history dumps (data.binance.vision) as replay input: `metrics` (5-minute open interest, one
file a symbol a day) and `fundingRate` (each settlement's rate, one file a symbol a month)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from core.futures import FundingSettlement, OpenInterest
from engine.analysis.columns import TradeColumns
from engine.replay.batches import ReplayBatch, RowProblem, row_text
from engine.replay.source import open_replay_file

METRICS_HEADER = "create_time,symbol,sum_open_interest"  # the start of a metrics dump's header
FUNDING_HEADER = "calc_time,funding_interval_hours,last_funding_rate"
_E8 = Decimal(10**8)


def history_form(header: str) -> str | None:
    """`csv-metrics` or `csv-funding` for a dump's header line, else None."""
    text = header.strip().lower()
    if text.startswith(METRICS_HEADER):
        return "csv-metrics"
    if text == FUNDING_HEADER:
        return "csv-funding"
    return None


def _scaled(text: str) -> int:
    """An exact 1e-8 integer of a decimal string (raises ValueError when it is not one)."""
    try:
        value = Decimal(text) * _E8
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal: {text!r}") from exc
    if value != value.to_integral_value() or not value.is_finite():
        raise ValueError(f"more than 8 decimals: {text!r}")
    return int(value)


def read_metrics(path: Path, wanted: str | None, batch_rows: int) -> Iterator[ReplayBatch]:
    """Each symbol's open interest (`sum_open_interest`, base units, at `create_time` UTC), in file order."""
    yield from _batches(path, batch_rows, lambda fields: _metrics_row(fields, wanted))


def read_funding(path: Path, symbol: str, batch_rows: int) -> Iterator[ReplayBatch]:
    """The symbol's settled funding rates (`last_funding_rate` at `calc_time` ms); the file name tells the symbol."""
    yield from _batches(path, batch_rows, lambda fields: _funding_row(fields, symbol))


def _metrics_row(fields: list[str], wanted: str | None) -> OpenInterest | None:
    created, symbol, value = fields[0], fields[1].strip().upper(), fields[2]
    if wanted is not None and symbol != wanted:
        return None
    at = datetime.strptime(created.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return OpenInterest(symbol, _scaled(value.strip()), int(at.timestamp() * 1000))


def _funding_row(fields: list[str], symbol: str) -> FundingSettlement:
    return FundingSettlement(symbol, _scaled(fields[2].strip()), int(fields[0]))


def _batches(path: Path, batch_rows: int, parse: object) -> Iterator[ReplayBatch]:
    assert callable(parse)
    pending: dict[str, ReplayBatch] = {}
    problems: list[RowProblem] = []
    rows = 0
    with open_replay_file(path) as f:
        for line_no, raw in enumerate(f, 1):
            text = raw.decode("utf-8", "replace").strip()
            if not text or history_form(text) is not None:
                continue
            try:
                row = parse(text.split(","))
            except (ValueError, IndexError) as exc:
                problems.append(RowProblem(str(path), line_no, f"bad_row: {exc}", row_text(text)))
                continue
            if row is None:
                continue
            batch = pending.setdefault(row.symbol, ReplayBatch(TradeColumns.empty(row.symbol), []))
            (batch.open_interest if isinstance(row, OpenInterest) else batch.funding).append(row)
            rows += 1
            if rows >= batch_rows:
                yield from _flush(pending, problems)
                problems, rows = [], 0
    yield from _flush(pending, problems)


def _flush(pending: dict[str, ReplayBatch], problems: list[RowProblem]) -> Iterator[ReplayBatch]:
    batches = list(pending.values())
    pending.clear()
    if problems:
        if batches:
            batches[0].problems.extend(problems)
        else:
            batches.append(ReplayBatch(TradeColumns.empty(""), list(problems)))
    yield from batches

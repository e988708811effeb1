"""Replay inputs: recorded Binance trades (public-data CSV dumps, WebSocket JSON lines, REST JSON) as column batches.

Bad rows never stop a replay: each is skipped and reported as a RowProblem with its line number. Only a file that
cannot be read at all (missing, empty, not any known form) raises ReplayInputError.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.replay.batches import ReplayBatch, ReplayInputError, SymbolNotNamedError, row_text
from engine.replay.csv_dump import CsvForm, csv_form, read_csv_dump
from engine.replay.futures_history import history_form, read_funding, read_metrics
from engine.replay.rest_json import read_rest_json
from engine.replay.source import BOM, open_replay_file
from engine.replay.ws_jsonl import is_stream_event, read_ws_jsonl

_SNIFF_BYTES = 1 << 20
_NAME = re.compile(
    r"([A-Z0-9_]+)-(?:(?:aggTrades|trades|fundingRate|metrics)-\d{4}-\d{2}(?:-\d{2})?\.(?:csv|zip)"
    r"|rest-aggTrades\.json)"
)


@dataclass(frozen=True)
class _Form:
    """What a file holds: its form's name, and for a CSV dump its layout."""

    name: str
    csv: CsvForm | None = None


def symbol_from_filename(path: Path) -> str | None:
    """The symbol of a Binance dump name (BTCUSDT-aggTrades-2026-01-01.csv, -trades-, monthly, .zip) or None."""
    match = _NAME.fullmatch(Path(path).name)
    return match.group(1) if match else None


def detect_format(path: Path) -> str:
    """The form of a replay file from its first non-empty line: csv-aggtrades, csv-trades, jsonl-ws, json-rest, or
    the USD-M history dumps csv-metrics and csv-funding."""
    return _sniff(Path(path)).name


def read_replay(path: Path, *, symbol: str | None = None, batch_rows: int = 262_144) -> Iterator[ReplayBatch]:
    """Batches of about `batch_rows` rows of a replay file in file order; `symbol` names (CSV, REST) or filters it."""
    path = Path(path)
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    form = _sniff(path)
    wanted = symbol.upper() if symbol else None
    if form.name == "jsonl-ws":
        return read_ws_jsonl(path, wanted, batch_rows)
    if form.name == "csv-metrics":
        return read_metrics(path, wanted, batch_rows)
    if form.name == "csv-funding":
        known_symbol = wanted or symbol_from_filename(path)
        if known_symbol is None:
            raise SymbolNotNamedError(f"{path}: the file name does not tell the symbol")
        return read_funding(path, known_symbol, batch_rows)
    known = wanted or symbol_from_filename(path)
    if known is None:
        raise SymbolNotNamedError(f"{path}: the file name does not tell the symbol")
    if form.name == "json-rest":
        return read_rest_json(path, known, batch_rows)
    assert form.csv is not None
    return read_csv_dump(path, form.csv, known, batch_rows)


def _sniff(path: Path) -> _Form:
    """Recognise the form of a file from its first non-empty line (or, if that one is corrupt, the next few)."""
    with open_replay_file(path) as f:
        head = f.read(_SNIFF_BYTES)
    lines = _first_lines(head, len(BOM) if head.startswith(BOM) else 0)
    if not lines:
        raise ReplayInputError(f"{path}: the file is empty")
    start, _, _, first = lines[0]
    if first.startswith(b"["):
        if not re.match(rb"\[\s*(\{|\]|$)", head[start:]):
            raise ReplayInputError(f"{path}: a JSON array, but not of REST aggTrades objects")
        return _Form("json-rest")
    if first.startswith(b"{"):
        if not any(is_stream_event(line) for *_, line in lines):
            raise ReplayInputError(f"{path}: JSON, but not Binance WebSocket trade messages (no 'e' event field)")
        return _Form("jsonl-ws")
    history = history_form(first.decode("utf-8", "replace"))
    if history is not None:
        return _Form(history)
    form = csv_form(head, lines)
    if form is not None:
        return _Form(form.name, form)
    raise ReplayInputError(
        f"{path}: not a known trade file: the first line {row_text(first.decode('utf-8', 'replace'))!r} is not a "
        "Binance CSV dump row or header, a WebSocket message or a REST aggTrades array"
    )


def _first_lines(head: bytes, start: int, count: int = 5) -> list[tuple[int, int, int, bytes]]:
    """The first `count` non-empty lines of a file's head: (start offset, end offset, line number, stripped text)."""
    found: list[tuple[int, int, int, bytes]] = []
    line_no = 1
    while start < len(head) and len(found) < count:
        end = head.find(b"\n", start)
        stop = len(head) if end < 0 else end + 1
        if text := head[start:stop].strip():
            found.append((start, stop, line_no, text))
        start, line_no = stop, line_no + 1
    return found


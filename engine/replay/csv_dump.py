"""Replay input: Binance public-data CSV dumps (aggTrades or trades, spot or USD-M, plain or zipped).

Blocks of whole lines go through the compiled parse (csv_kernel) when they are in Binance's own form and all pass
the checks; otherwise through pyarrow, and line by line with exact decimals where pyarrow cannot convert them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from core.trades import Trade, parse_scaled
from engine.analysis.columns import TradeColumns
from engine.connection.validator import TradeValidator
from engine.replay import csv_kernel
from engine.replay.batches import ReplayBatch, RowProblem, row_text, trade_reason
from engine.replay.source import open_replay_file
from engine.venues.binance.rules import BINANCE_OPENED_MS, binance_validator

MICROS_FROM = 10**14  # a dump time at or above this is in microseconds (spot dumps from 2025 on), else milliseconds
_FIND_STEP = 1 << 16
_RAMP_UP = 3  # the first CSV block is 1/8 of the others
_EXACT_BYTES = 1 << 16  # a block pyarrow cannot convert is halved down to this size, then read line by line
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INTEGER = re.compile(r"-?[0-9]+")
_MANY_DECIMALS = re.compile(r"[+-]?[0-9]*\.[0-9]{9,}")
_BOOLS = {"True": True, "true": True, "False": False, "false": False}

# Column names as Binance writes them (USD-M headers; spot dumps have the same columns without a header), and ours.
_AGG_LABELS = (
    "agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time", "is_buyer_maker",
    "is_best_match",
)
_AGG_NAMES = ("id", "price", "qty", "first_id", "last_id", "time", "is_buyer_maker", "is_best_match")
_TRD_LABELS = ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match")
_TRD_NAMES = ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match")
_LAYOUTS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("csv-aggtrades", _AGG_NAMES, _AGG_LABELS), ("csv-trades", _TRD_NAMES, _TRD_LABELS)
)
_DECIMAL = pa.decimal128(20, 8)
_ARROW_TYPES = {
    "id": pa.int64(), "price": _DECIMAL, "qty": _DECIMAL, "first_id": pa.int64(), "last_id": pa.int64(),
    "time": pa.int64(), "is_buyer_maker": pa.bool_(), "is_best_match": pa.bool_(),
}  # quote_qty is not read




@dataclass(frozen=True)
class CsvForm:
    """A CSV dump's layout and where its rows start (past BOM, blank lines, header)."""

    name: str
    start: int
    first_line: int
    line_bytes: float
    names: tuple[str, ...]
    labels: tuple[str, ...]


def csv_form(head: bytes, lines: list[tuple[int, int, int, bytes]]) -> CsvForm | None:
    """The form of a dump from its head and first non-empty lines (start, stop, line number, text); None if none."""
    start, stop, line_no, first = lines[0]
    header = tuple(f.strip().lower() for f in first.decode("utf-8", "replace").split(","))
    for name, names, labels in _LAYOUTS:
        if header in (labels, labels[:-1]):  # a USD-M header line
            n = len(header)
            return CsvForm(name, stop, line_no + 1, _line_bytes(head[stop:]), names[:n], labels[:n])
    for *_, line in lines:
        layout = _headerless(tuple(f.strip() for f in line.decode("utf-8", "replace").split(",")))
        if layout is not None:
            name, names, labels = layout
            return CsvForm(name, start, line_no, _line_bytes(head[start:]), names, labels)
    return None


def _headerless(fields: tuple[str, ...]) -> tuple[str, tuple[str, ...], tuple[str, ...]] | None:
    """The layout of a header-less dump row, told apart by its column count and where its booleans are."""
    if not (fields[0].isascii() and fields[0].isdigit()):
        return None
    flags = tuple(f in _BOOLS for f in fields)
    for name, names, labels in _LAYOUTS:
        for n in (len(names), len(names) - 1):  # spot dumps end with is_best_match; USD-M dumps do not have it
            if flags == tuple(c.startswith("is_") for c in names[:n]):
                return name, names[:n], labels[:n]
    return None


def _line_bytes(sample: bytes) -> float:
    """Average length of a line in a sample of a CSV file."""
    return max(len(sample), 1) / max(sample.count(b"\n"), 1)


def read_csv_dump(path: Path, form: CsvForm, symbol: str, batch_rows: int) -> Iterator[ReplayBatch]:
    """Batches of a CSV dump, decoded block by block of whole lines."""
    decoder = _CsvDecoder(str(path), form, symbol)
    size = max(int(form.line_bytes * batch_rows), 1)
    blocks = _streamed_blocks(path, form.start, size)
    line = form.first_line
    for block in blocks:
        batch, lines = decoder.decode(block, line)
        line += lines
        if len(batch.columns) or batch.problems:
            yield batch


def _line_end(view: np.ndarray, at: int) -> int:
    """Offset just past the first line end at or after `at`; the data's end if there is none."""
    while at < len(view):
        hits = np.flatnonzero(view[at : at + _FIND_STEP] == ord("\n"))
        if len(hits):
            return at + int(hits[0]) + 1
        at += _FIND_STEP
    return len(view)


def _streamed_blocks(path: Path, start: int, size: int) -> Iterator[pa.Buffer]:
    """Blocks of about `size` bytes read in order (memory stays flat), each ending at a line end (the last may not).

    The first blocks are smaller (size / 2**_RAMP_UP, doubling): a consumer reading ahead gets the start sooner.
    Each block is a view of one buffer that the next block overwrites: use a block before asking for the next.
    """
    step = max(size >> _RAMP_UP, 1)
    with open_replay_file(path) as f:
        f.read(start)
        buffer = bytearray()
        carried = 0  # bytes of a partial line moved to the buffer's start
        while True:
            if len(buffer) < carried + step:
                buffer = buffer[:carried] + bytearray(step)
            end = carried + f.readinto(memoryview(buffer)[carried : carried + step])
            if end == carried:
                break
            step = min(2 * step, size)
            cut = buffer.rfind(b"\n", 0, end) + 1
            if cut:
                yield pa.py_buffer(memoryview(buffer)[:cut])
            carried = end - cut
            buffer[:carried] = buffer[cut:end]
        if carried:
            yield pa.py_buffer(bytes(buffer[:carried]))


@dataclass
class _Rows:
    """Converted CSV rows before the checks: exact columns, and whether each amount fitted int64 units of 1e-8."""

    id: np.ndarray
    first_id: np.ndarray
    last_id: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    time: np.ndarray
    is_sell: np.ndarray
    price_fits: np.ndarray
    qty_fits: np.ndarray

    @classmethod
    def from_table(cls, table: pa.Table) -> _Rows:
        """Rows from pyarrow's parse (no nulls: empty fields fail the conversion)."""
        ids = _int64(table, "id")
        first, last = (ids, ids)
        if "first_id" in table.column_names:  # aggTrades; a trade covers just its own id
            first, last = _int64(table, "first_id"), _int64(table, "last_id")
        price, price_fits = _scaled(table.column("price"))
        qty, qty_fits = _scaled(table.column("qty"))
        sells = table.column("is_buyer_maker").to_numpy()
        return cls(ids, first, last, price, qty, _to_ms(_int64(table, "time")), sells, price_fits, qty_fits)

    @classmethod
    def from_values(cls, values: np.ndarray, ranges: bool) -> _Rows:
        """Rows from the compiled parse (values by csv_kernel.SLOTS; without id ranges a trade covers its own id)."""
        ids, first, last, price, qty, time, sells = values
        if not ranges:
            first = last = ids
        fits = np.ones(len(ids), dtype=bool)
        return cls(ids, first, last, price, qty, _to_ms(time), sells.astype(bool), fits, fits)

    @classmethod
    def from_records(cls, records: list[tuple[int, int, int, int, int, int, bool]]) -> _Rows:
        """Rows from the exact per-line path (amounts out of range were already reported there)."""
        cols = [np.array(c, dtype=np.int64) for c in zip(*records, strict=True)]
        if not records:
            cols = [np.empty(0, dtype=np.int64)] * 7
        fits = np.ones(len(records), dtype=bool)
        ids, first, last, price, qty, time, sells = cols
        return cls(ids, first, last, price, qty, _to_ms(time), sells.astype(bool), fits, fits)

    def suspect(self) -> np.ndarray:
        """Rows that may fail the checks: what binance_validator(live=False) rejects, or an amount out of range."""
        return (
            ~(self.price_fits & self.qty_fits) | (self.price <= 0) | (self.qty <= 0)
            | (self.time < BINANCE_OPENED_MS) | (self.first_id > self.last_id)
        )

    def reason(self, i: int, symbol: str, validator: TradeValidator) -> str | None:
        """Why row i is rejected, or None if it is good."""
        for name, fits in (("price", self.price_fits), ("quantity", self.qty_fits)):
            if not fits[i]:
                return f"out_of_range: the {name} does not fit 64-bit units of 1e-8"
        t = int(self.time[i])
        trade = Trade(symbol, int(self.id[i]), int(self.first_id[i]), int(self.last_id[i]), int(self.price[i]),
                      int(self.qty[i]), t, t, bool(self.is_sell[i]))
        code = validator.check(trade)
        return None if code is None else trade_reason(code, trade)

    def columns(self, symbol: str, keep: np.ndarray | None = None) -> TradeColumns:
        """The rows (those in `keep` if given) as a TradeColumns batch."""
        cols = TradeColumns(symbol, self.id, self.first_id, self.last_id, self.price, self.qty, self.time, self.is_sell)
        return cols if keep is None else cols.select(keep)


def _int64(table: pa.Table, name: str) -> np.ndarray:
    """An int64 column as numpy."""
    return table.column(name).combine_chunks().to_numpy()


def _scaled(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """decimal128(·, 8) values as exact int64 units of 1e-8, and whether each fits (high word = sign of the low)."""
    array = column.combine_chunks()
    words = np.frombuffer(array.buffers()[1], dtype="<i8")[2 * array.offset : 2 * (array.offset + len(array))]
    low, high = np.ascontiguousarray(words[0::2]), words[1::2]
    return low, high == (low >> 63)


def _to_ms(time: np.ndarray) -> np.ndarray:
    """Dump times in milliseconds: values at or above 1e14 are microseconds (floor division)."""
    micro = time >= MICROS_FROM
    if not micro.any():
        return time
    return time // 1000 if micro.all() else np.where(micro, time // 1000, time)


class _Lines:
    """Where each line of a CSV block starts and ends, and how many comma-separated fields it has."""

    def __init__(self, block: pa.Buffer) -> None:
        view = np.frombuffer(block, dtype=np.uint8)
        newlines = np.flatnonzero(view == ord("\n"))
        ends = newlines if view[-1] == ord("\n") else np.append(newlines, len(view))
        starts = np.concatenate(([0], newlines[: len(ends) - 1] + 1))
        commas = np.flatnonzero(view == ord(","))
        fields = np.searchsorted(commas, ends) - np.searchsorted(commas, starts) + 1
        ends = ends - ((ends > starts) & (view[np.maximum(ends - 1, 0)] == ord("\r")))
        self.view, self.starts, self.ends, self.fields = view, starts, ends, fields

    def text(self, k: int) -> str:
        """Line k of the block, cut for a RowProblem."""
        return row_text(self.view[self.starts[k] : self.ends[k]].tobytes().decode("utf-8", "replace"))


class _BadRow(ValueError):
    """A CSV line that cannot become a trade; the message is the reason."""


class _CsvDecoder:
    """Blocks of whole CSV lines to checked batches: pyarrow first, line by line only where pyarrow cannot convert."""

    def __init__(self, path: str, form: CsvForm, symbol: str) -> None:
        self.path, self.form, self.symbol = path, form, symbol
        self.validator = binance_validator(live=False)
        self.kinds, self.slots = csv_kernel.layout(form.names)
        self.skipped: list[str] = []  # a list: pyarrow calls the handler from its threads, and appends are atomic
        used = [n for n in form.names if n in _ARROW_TYPES]
        self.read_options = pacsv.ReadOptions(column_names=list(form.names))
        # No quoting and no blank-line skipping: each file line is one pyarrow row or one skipped row, so line numbers
        # are exact; a blank line fails the conversion and sends its block to the exact path.
        self.parse_options = pacsv.ParseOptions(
            quote_char=False, ignore_empty_lines=False, invalid_row_handler=self._skip
        )
        self.convert_options = pacsv.ConvertOptions(
            column_types={n: _ARROW_TYPES[n] for n in used}, include_columns=used, null_values=[],
            true_values=["True", "true"], false_values=["False", "false"],
        )

    def _skip(self, row: pacsv.InvalidRow) -> str:
        """pyarrow's handler for a row with the wrong column count: note it and skip it."""
        self.skipped.append(row.text)
        return "skip"

    def decode(self, block: pa.Buffer, first_line: int) -> tuple[ReplayBatch, int]:
        """The batch of a block whose first line is file line `first_line`, and how many lines the block holds."""
        canonical = self._canonical(block)
        if canonical is not None:
            return canonical
        batch, lines = self._decode(block, first_line)
        if batch.problems and memoryview(block)[-1] != ord("\n"):  # the file ends without a line end
            last = first_line + lines - 1
            batch.problems = [
                replace(p, reason=f"{p.reason} (the last line has no line end: truncated file?)") if p.line == last
                else p for p in batch.problems
            ]
        return batch, lines

    def _canonical(self, block: pa.Buffer) -> tuple[ReplayBatch, int] | None:
        """The compiled parse of a block of lines in Binance's own form that all pass the checks; else None."""
        values, ok = csv_kernel.parse_block(np.frombuffer(block, dtype=np.uint8), self.kinds, self.slots)
        if not ok:
            return None
        rows = _Rows.from_values(values, ranges="first_id" in self.form.names)
        if rows.suspect().any():
            return None
        return ReplayBatch(rows.columns(self.symbol), []), len(rows.id)

    def _decode(self, block: pa.Buffer, first_line: int) -> tuple[ReplayBatch, int]:
        """pyarrow's parse of the block; if it cannot convert it, each half in turn, and small blocks line by line."""
        decoded = self._fast(block, first_line)
        if decoded is not None:
            return decoded
        view = np.frombuffer(block, dtype=np.uint8)
        middle = _line_end(view, len(view) // 2)
        if len(block) <= _EXACT_BYTES or middle == len(view):
            return self._exact(block, first_line)
        head, head_lines = self._decode(block.slice(0, middle), first_line)
        tail, tail_lines = self._decode(block.slice(middle), first_line + head_lines)
        return ReplayBatch(
            TradeColumns.concat(self.symbol, [head.columns, tail.columns]), head.problems + tail.problems
        ), head_lines + tail_lines

    def _fast(self, block: pa.Buffer, first_line: int) -> tuple[ReplayBatch, int] | None:
        """pyarrow's parse of the block; None if pyarrow cannot convert it."""
        self.skipped.clear()
        try:
            table = pacsv.read_csv(
                pa.BufferReader(block), read_options=self.read_options, parse_options=self.parse_options,
                convert_options=self.convert_options,
            )
        except pa.ArrowInvalid:
            return None
        rows = _Rows.from_table(table)
        suspect = rows.suspect()
        lines = table.num_rows + len(self.skipped)
        if not self.skipped and not suspect.any():
            return ReplayBatch(rows.columns(self.symbol), []), lines
        index = _Lines(block)
        ncols = len(self.form.names)
        row_lines = np.flatnonzero(index.fields == ncols)
        if len(index.fields) != lines or len(row_lines) != table.num_rows:  # e.g. a lone \r, which pyarrow splits at
            return None
        problems = [
            RowProblem(self.path, first_line + int(k), _column_count(ncols, int(index.fields[k])), index.text(int(k)))
            for k in np.flatnonzero(index.fields != ncols)
        ]
        keep, checked = self._check(rows, suspect, lambda i: int(row_lines[i]), index.text, first_line)
        return ReplayBatch(rows.columns(self.symbol, keep), sorted(problems + checked, key=_by_line)), lines

    def _exact(self, block: pa.Buffer, first_line: int) -> tuple[ReplayBatch, int]:
        """The block line by line with exact decimal parsing: every bad line is reported, every good one kept."""
        lines = memoryview(block).tobytes().split(b"\n")
        if not lines[-1]:
            lines.pop()
        records: list[tuple[int, int, int, int, int, int, bool]] = []
        row_lines: list[int] = []
        problems: list[RowProblem] = []
        for k, raw in enumerate(lines):
            raw = raw.removesuffix(b"\r")
            if not raw:
                continue
            text = raw.decode("utf-8", "replace")
            try:
                records.append(self._record(text))
            except _BadRow as exc:
                problems.append(RowProblem(self.path, first_line + k, str(exc), row_text(text)))
                continue
            row_lines.append(k)
        rows = _Rows.from_records(records)
        keep, checked = self._check(
            rows, rows.suspect(), row_lines.__getitem__,
            lambda k: row_text(lines[k].removesuffix(b"\r").decode("utf-8", "replace")), first_line,
        )
        return ReplayBatch(rows.columns(self.symbol, keep), sorted(problems + checked, key=_by_line)), len(lines)

    def _record(self, text: str) -> tuple[int, int, int, int, int, int, bool]:
        """One CSV line as (id, first_id, last_id, price, qty, time, is_sell); raises _BadRow."""
        fields = text.split(",")
        if len(fields) != len(self.form.names):
            raise _BadRow(_column_count(len(self.form.names), len(fields)))
        v = {
            name: _PARSERS[name](label, field)
            for name, label, field in zip(self.form.names, self.form.labels, fields, strict=True)
            if name in _PARSERS
        }
        first, last = (v["first_id"], v["last_id"]) if "first_id" in v else (v["id"], v["id"])
        return v["id"], first, last, v["price"], v["qty"], v["time"], bool(v["is_buyer_maker"])

    def _check(
        self, rows: _Rows, suspect: np.ndarray, line_of: Callable[[int], int], text_of: Callable[[int], str],
        first_line: int,
    ) -> tuple[np.ndarray, list[RowProblem]]:
        """Which rows pass the checks, and a problem for each that does not (line_of: row -> line in the block)."""
        keep = ~suspect
        problems = []
        for i in np.flatnonzero(suspect):
            reason = rows.reason(int(i), self.symbol, self.validator)
            if reason is None:
                keep[i] = True
            else:
                k = line_of(int(i))
                problems.append(RowProblem(self.path, first_line + k, reason, text_of(k)))
        return keep, problems


def _by_line(problem: RowProblem) -> int:
    """Sort key: file order."""
    return problem.line


def _column_count(expected: int, found: int) -> str:
    """The reason for a line with the wrong number of fields."""
    return f"wrong_column_count: expected {expected} comma-separated fields, found {found}"


def _int_field(label: str, field: str) -> int:
    """An integer field, as pyarrow's int64 reads it."""
    value = field.strip(" \t")
    if not _INTEGER.fullmatch(value):
        raise _BadRow(f"bad_integer: {label} {field!r} is not an integer")
    number = int(value)
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise _BadRow(f"out_of_range: {label} {field!r} does not fit 64 bits")
    return number


def _decimal_field(label: str, field: str) -> int:
    """An exact decimal field in int64 units of 1e-8 (negative values pass: the checks report them)."""
    value = field.strip(" \t")
    sign = -1 if value.startswith("-") else 1
    scaled = parse_scaled(value[1:] if value[:1] in ("-", "+") else value)
    if scaled is None:
        if _MANY_DECIMALS.fullmatch(value):
            raise _BadRow(f"too_many_decimals: {label} {field!r} has non-zero digits beyond 8 decimals")
        raise _BadRow(f"bad_decimal: {label} {field!r} is not a decimal number")
    if scaled > _INT64_MAX:
        raise _BadRow(f"out_of_range: the {label} does not fit 64-bit units of 1e-8")
    return sign * scaled


def _bool_field(label: str, field: str) -> bool:
    """A True/False/true/false field."""
    try:
        return _BOOLS[field]
    except KeyError:
        raise _BadRow(f"bad_boolean: {label} {field!r} is not True/False") from None


_PARSERS: dict[str, Callable[[str, str], int | bool]] = {
    "id": _int_field, "first_id": _int_field, "last_id": _int_field, "time": _int_field,
    "price": _decimal_field, "qty": _decimal_field, "is_buyer_maker": _bool_field, "is_best_match": _bool_field,
}  # quote_qty is not read


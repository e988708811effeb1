"""Replay input readers against real Binance recordings: exact values, file order, every bad row reported by line."""

from __future__ import annotations

import csv
import gzip
import zipfile
from decimal import Decimal
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.analysis.columns import TradeColumns
from engine.replay import (
    ReplayBatch,
    ReplayInputError,
    SymbolNotNamedError,
    csv_kernel,
    detect_format,
    read_replay,
    symbol_from_filename,
)

SPOT_CSV = "BTCUSDT-aggTrades-2026-01-01.csv"
SCALE = Decimal(10**8)
Row = tuple[int, int, int, int, int, int, bool]  # id, first_id, last_id, price, qty, time ms, is_sell


def scaled(text: str) -> int:
    """An exact decimal string in 1e-8 units, computed independently of the code under test."""
    value = Decimal(text) * SCALE
    assert value == value.to_integral_value()
    return int(value)


def spot_csv_rows(shared_data: Path) -> list[list[str]]:
    with open(shared_data / SPOT_CSV, newline="") as f:
        return list(csv.reader(f))


def expected_agg(fields: list[str], time_divisor: int = 1000) -> Row:
    """A spot aggTrades dump row (times in microseconds) as the values it stands for."""
    a, p, q, first, last, t, maker = fields[:7]
    return int(a), int(first), int(last), scaled(p), scaled(q), int(t) // time_divisor, maker in ("True", "true")


def rows_of(columns: TradeColumns) -> list[Row]:
    return list(zip(
        columns.id.tolist(), columns.first_id.tolist(), columns.last_id.tolist(), columns.price.tolist(),
        columns.qty.tolist(), columns.time.tolist(), columns.is_sell.tolist(), strict=True,
    ))


def read_all(path: Path, **kwargs: object) -> tuple[list[ReplayBatch], list[Row]]:
    batches = list(read_replay(path, **kwargs))
    return batches, [row for b in batches for row in rows_of(b.columns)]


def problems_by_line(batches: list[ReplayBatch]) -> dict[int, str]:
    lines = [p.line for b in batches for p in b.problems]
    assert len(lines) == len(set(lines)), "a bad row is reported once"
    return {p.line: p.reason for b in batches for p in b.problems}


@pytest.mark.parametrize(
    ("name", "form"),
    [
        (SPOT_CSV, "csv-aggtrades"),
        ("binance-spot-aggtrade-ws.jsonl", "jsonl-ws"),
        ("binance-usdm-aggtrade-ws.jsonl", "jsonl-ws"),
        ("binance-spot-ethusdt-trade-ws.jsonl", "jsonl-ws"),
        ("XRPETH-rest-aggTrades.json", "json-rest"),
        ("BTCUSDT-rest-aggTrades.json", "json-rest"),
    ],
)
def test_each_real_recording_is_recognised_from_its_content(shared_data: Path, tmp_path: Path, name: str,
                                                            form: str) -> None:
    assert detect_format(shared_data / name) == form
    renamed = tmp_path / "recording.txt"  # the extension plays no part
    renamed.write_bytes((shared_data / name).read_bytes())
    assert detect_format(renamed) == form


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("BTCUSDT-aggTrades-2026-01-01.csv", "BTCUSDT"),
        ("ETHUSDT-trades-2024-08-08.csv", "ETHUSDT"),
        ("BTCUSDT-aggTrades-2026-01.csv", "BTCUSDT"),
        ("1000SHIBUSDT-aggTrades-2025-03-01.zip", "1000SHIBUSDT"),
        ("BTCUSD_PERP-trades-2024-01.zip", "BTCUSD_PERP"),
        ("XRPETH-rest-aggTrades.json", "XRPETH"),
        ("trades.csv", None),
        ("BTCUSDT-klines-2026-01-01.csv", None),
        ("btcusdt-aggTrades-2026-01-01.csv", None),
        ("BTCUSDT-aggTrades-2026-01-01.csv.CHECKSUM", None),
    ],
)
def test_symbol_comes_from_a_binance_dump_name(name: str, symbol: str | None) -> None:
    assert symbol_from_filename(Path("/any/where") / name) == symbol


@pytest.mark.parametrize("batch_rows", [3, 1000, 262_144])
def test_spot_csv_gives_exactly_the_values_of_the_file(shared_data: Path, batch_rows: int) -> None:
    expected = [expected_agg(r) for r in spot_csv_rows(shared_data)]
    batches, rows = read_all(shared_data / SPOT_CSV, batch_rows=batch_rows)
    assert rows == expected
    assert len(expected) == 5000 and all(1767225600000 <= r[5] < 1767226600000 for r in rows)  # µs became ms
    assert {b.columns.symbol for b in batches} == {"BTCUSDT"}
    assert not any(b.problems for b in batches)
    assert all(b.columns.price.dtype == np.int64 and b.columns.is_sell.dtype == bool for b in batches)
    if batch_rows == 1000:
        assert [round(len(b.columns), -1) for b in batches[:3]] == [120, 250, 500]  # ramping up: starts sooner
        assert all(900 <= len(b.columns) <= 1100 for b in batches[3:-1])


def test_a_zipped_dump_reads_like_the_csv_inside(shared_data: Path, tmp_path: Path) -> None:
    archive = tmp_path / "BTCUSDT-aggTrades-2026-01-01.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(shared_data / SPOT_CSV, SPOT_CSV)
    assert detect_format(archive) == "csv-aggtrades"
    _, rows = read_all(archive, batch_rows=700)
    assert rows == [expected_agg(r) for r in spot_csv_rows(shared_data)]


def test_a_gzipped_capture_gives_its_trades_and_reports_what_is_not_a_stream_message(shared_data: Path) -> None:
    path = shared_data / "binance-usdm-btcusdt-book-trade-ws-2024-08-08.jsonl.gz"
    messages = [orjson.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines() if line.strip()]
    events = [m.get("data", m) for m in messages]
    trades = [e for e in events if e.get("e") == "trade"]
    expected = [(e["t"], e["t"], e["t"], scaled(e["p"]), scaled(e["q"]), e["T"], e["m"]) for e in trades]
    assert detect_format(path) == "jsonl-ws"
    batches, rows = read_all(path, batch_rows=5000)
    assert len(expected) == 21313 and rows == expected
    skipped = [i + 1 for i, e in enumerate(events) if "e" not in e]  # REST depth snapshots among the stream
    assert sorted(problems_by_line(batches)) == skipped and skipped


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_usdm_aggtrades_csv_with_header_and_milliseconds(shared_data: Path, tmp_path: Path, newline: str) -> None:
    source = spot_csv_rows(shared_data)[:300]
    lines = ["agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"]
    lines += [",".join([*r[:5], str(int(r[5]) // 1000), r[6].lower()]) for r in source]
    lines[51] = lines[51].replace(",0.", ",-0.", 1)  # data row 51 = file line 52: a negative quantity
    path = tmp_path / "BTCUSDT-aggTrades-2023-05-01.csv"
    path.write_text(newline.join(lines) + newline)
    assert detect_format(path) == "csv-aggtrades"
    batches, rows = read_all(path, batch_rows=64)
    assert rows == [expected_agg(r) for i, r in enumerate(source) if i != 50]
    assert list(problems_by_line(batches)) == [52]
    assert problems_by_line(batches)[52].startswith("non_positive_quantity")
    assert [p.text for b in batches for p in b.problems] == [lines[51]]


def test_trades_csv_dumps_spot_and_usdm(shared_data: Path, tmp_path: Path) -> None:
    source = spot_csv_rows(shared_data)[:200]
    quote = [str(Decimal(r[1]) * Decimal(r[2])) for r in source]  # up to 16 decimals: a column that is not read
    spot = tmp_path / "BTCUSDT-trades-2026-01-01.csv"
    spot.write_text("".join(f"{r[0]},{r[1]},{r[2]},{q},{r[5]},{r[6]},True\n" for r, q in zip(source, quote,
                                                                                             strict=True)))
    usdm = tmp_path / "BTCUSDT-trades-2023-05.csv"
    usdm.write_text("id,price,qty,quote_qty,time,is_buyer_maker\n" + "".join(
        f"{r[0]},{r[1]},{r[2]},{q},{int(r[5]) // 1000},{r[6].lower()}\n" for r, q in zip(source, quote, strict=True)
    ))
    expected = [(int(r[0]), int(r[0]), int(r[0]), *expected_agg(r)[3:]) for r in source]
    for path in (spot, usdm):
        assert detect_format(path) == "csv-trades"
        batches, rows = read_all(path)
        assert rows == expected and not any(b.problems for b in batches)


def test_corrupt_rows_are_reported_by_line_and_every_good_row_still_comes_out(shared_data: Path,
                                                                              tmp_path: Path) -> None:
    source = spot_csv_rows(shared_data)
    lines = [",".join(r) for r in source]
    bad: dict[int, str] = {}  # 0-based index in `lines` -> expected start of the reason

    def corrupt(i: int, fields: list[str], reason: str) -> None:
        lines[i] = ",".join(fields)
        bad[i] = reason

    corrupt(9, source[9][:5], "wrong_column_count")
    corrupt(1499, [source[1499][0], "abc", *source[1499][2:]], "bad_decimal")
    corrupt(2599, [*source[2599][:2], "-0.00100000", *source[2599][3:]], "non_positive_quantity")
    corrupt(3699, [*source[3699][:5], "1400000000000", *source[3699][6:]], "timestamp_before_binance")
    corrupt(4199, [*source[4199][:2], "0.123456789", *source[4199][3:]], "too_many_decimals")
    corrupt(4599, [*source[4599][:6], "Maybe", source[4599][7]], "bad_boolean")
    lines[-1] = lines[-1][:30]  # the download was cut off in the middle of the last line
    bad[len(lines) - 1] = "wrong_column_count"
    lines.insert(3000, "")  # a blank line: skipped silently, but it counts as a line
    path = tmp_path / SPOT_CSV
    path.write_text("\n".join(lines))  # and no line end after the truncated last line

    def file_line(i: int) -> int:
        return i + 1 + (i >= 3000)

    good = [expected_agg(r) for i, r in enumerate(source) if i not in bad]
    for batch_rows in (700, 262_144):  # blocks with and without bad rows; one block that falls back as a whole
        batches, rows = read_all(path, batch_rows=batch_rows)
        assert rows == good
        reported = problems_by_line(batches)
        assert sorted(reported) == [file_line(i) for i in sorted(bad)]
        for i, start in bad.items():
            assert reported[file_line(i)].startswith(start), reported[file_line(i)]
        texts = {p.line: p.text for b in batches for p in b.problems}
        assert texts[file_line(1499)] == lines[1499]
        assert "truncated" in reported[file_line(len(source) - 1)]
        assert all(p.path == str(path) and len(p.text) <= 120 for b in batches for p in b.problems)


def test_trade_stream_jsonl_gives_exactly_the_values_of_the_file(shared_data: Path) -> None:
    path = shared_data / "binance-spot-ethusdt-trade-ws.jsonl"
    events = [orjson.loads(line)["data"] for line in path.read_bytes().splitlines() if line.strip()]
    expected = [(e["t"], e["t"], e["t"], scaled(e["p"]), scaled(e["q"]), e["T"], e["m"]) for e in events]
    batches, rows = read_all(path, batch_rows=1000)
    assert len(expected) == 6106 and rows == expected
    assert {b.columns.symbol for b in batches} == {"ETHUSDT"} and not any(b.problems for b in batches)


def test_aggtrade_jsonl_keeps_each_symbols_file_order_and_filters_by_symbol(shared_data: Path) -> None:
    for name in ("binance-spot-aggtrade-ws.jsonl", "binance-usdm-aggtrade-ws.jsonl"):
        path = shared_data / name
        expected: dict[str, list[Row]] = {}
        for line in path.read_bytes().splitlines():
            e = orjson.loads(line)["data"]
            expected.setdefault(e["s"], []).append((e["a"], e["f"], e["l"], scaled(e["p"]), scaled(e["q"]), e["T"],
                                                    e["m"]))
        got: dict[str, list[Row]] = {}
        for batch in read_replay(path, batch_rows=500):
            assert not batch.problems
            got.setdefault(batch.columns.symbol, []).extend(rows_of(batch.columns))
        assert got == expected
        symbol = next(iter(expected))
        _, rows = read_all(path, symbol=symbol.lower())
        assert rows == expected[symbol]


def test_bad_jsonl_lines_are_problems_with_line_numbers_and_other_events_are_ignored(shared_data: Path,
                                                                                     tmp_path: Path) -> None:
    lines = (shared_data / "binance-spot-ethusdt-trade-ws.jsonl").read_bytes().splitlines()[:50]
    lines[4] = lines[4][:40]  # cut JSON
    lines[9] = lines[9].replace(b'"p":"', b'"p":"x')
    lines[14] = b'{"stream":"ethusdt@trade","data":{"e":"serverShutdown","E":1723161255612}}'
    lines[19] = lines[19].replace(b'"T":', b'"T":1400000000000,"old":')
    lines.insert(30, b"")
    path = tmp_path / "ws.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    batches, rows = read_all(path, batch_rows=20)
    reasons = problems_by_line(batches)
    assert sorted(reasons) == [5, 10, 20]
    assert reasons[5].startswith("invalid_json") and reasons[10].startswith("bad_decimal")
    assert reasons[20].startswith("timestamp_before_binance")
    assert len(rows) == 50 - 4


def test_rest_arrays_give_exactly_the_values_of_the_file(shared_data: Path) -> None:
    for name in ("XRPETH-rest-aggTrades.json", "BTCUSDT-rest-aggTrades.json"):
        path = shared_data / name
        expected = [(e["a"], e["f"], e["l"], scaled(e["p"]), scaled(e["q"]), e["T"], e["m"])
                    for e in orjson.loads(path.read_bytes())]
        batches, rows = read_all(path, batch_rows=5000)
        assert rows == expected and not any(b.problems for b in batches)
        assert {b.columns.symbol for b in batches} == {name.split("-")[0]}
    assert len(read_all(shared_data / "XRPETH-rest-aggTrades.json", symbol="XRPETH")[1]) == 12477


def test_rest_array_needs_a_symbol_and_reports_bad_elements_by_number(shared_data: Path, tmp_path: Path) -> None:
    elements = orjson.loads((shared_data / "BTCUSDT-rest-aggTrades.json").read_bytes())
    del elements[6]["p"]
    elements[41]["q"] = "0.00000000"
    elements[70] = "not an object"
    path = tmp_path / "history.json"
    path.write_bytes(orjson.dumps(elements))
    with pytest.raises(SymbolNotNamedError, match=r"history\.json: the file name does not tell the symbol"):
        read_replay(path)
    batches, rows = read_all(path, symbol="BTCUSDT")
    reasons = problems_by_line(batches)
    assert sorted(reasons) == [7, 42, 71]
    assert reasons[7].startswith("missing_field") and reasons[42].startswith("non_positive_quantity")
    assert all("element" in r for r in reasons.values())
    assert len(rows) == 97


@pytest.mark.parametrize(
    "content",
    [b"", b"\n  \n", b"hello,world\nfoo,bar\n", b"timestamp,open,high,low,close\n1,2,3,4,5\n",
     b'{"name": "not a trade"}\n', b'["a", "b"]', b"\x89PNG\r\n\x1a\n\x00\x00"],
)
def test_a_file_that_is_not_trades_raises_naming_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes-2026.csv"
    path.write_bytes(content)
    with pytest.raises(ReplayInputError, match=r"notes-2026\.csv"):
        detect_format(path)
    with pytest.raises(ReplayInputError, match=r"notes-2026\.csv"):
        read_replay(path, symbol="BTCUSDT")


def test_a_missing_file_raises_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ReplayInputError, match=r"absent\.csv: no such file"):
        read_replay(tmp_path / "absent.csv")


CORRUPTIONS = {
    "wrong_column_count": lambda f: f[:4],
    "bad_decimal": lambda f: [f[0], "1.2.3", *f[2:]],
    "non_positive_price": lambda f: [f[0], "0.00000000", *f[2:]],
    "timestamp_before_binance": lambda f: [*f[:5], "1498867199999", *f[6:]],
    "bad_integer": lambda f: [*f[:3], "12x", *f[4:]],
    "inconsistent_ids": lambda f: [*f[:3], str(int(f[4]) + 1), *f[4:]],
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    bad=st.dictionaries(st.integers(0, 1499), st.sampled_from(sorted(CORRUPTIONS)), max_size=6),
    blanks=st.sets(st.integers(0, 1499), max_size=3),
    batch_rows=st.sampled_from([50, 400, 262_144]),
)
@example(bad={0: "wrong_column_count"}, blanks=set(), batch_rows=50)  # a corrupt first line still leaves a CSV dump
def test_any_mix_of_bad_rows_and_block_sizes_keeps_good_rows_and_line_numbers(
    shared_data: Path, tmp_path: Path, bad: dict[int, str], blanks: set[int], batch_rows: int
) -> None:
    source = spot_csv_rows(shared_data)[:1500]
    lines: list[str] = []
    where: dict[int, int] = {}  # row index -> file line
    for i, fields in enumerate(source):
        if i in blanks:
            lines.append("")
        lines.append(",".join(CORRUPTIONS[bad[i]](fields) if i in bad else fields))
        where[i] = len(lines)
    path = tmp_path / "BTCUSDT-aggTrades-2026-01-01.csv"
    path.write_text("\n".join(lines) + "\n")
    batches, rows = read_all(path, batch_rows=batch_rows)
    assert rows == [expected_agg(r) for i, r in enumerate(source) if i not in bad]
    reported = problems_by_line(batches)
    assert sorted(reported) == sorted(where[i] for i in bad)
    for i, kind in bad.items():
        assert reported[where[i]].startswith(kind)


FIELD_VARIANTS = {  # the canonical form and near misses, which the compiled parse must leave to pyarrow's path
    "int": ["0", "007", "+5", "-5", " 5", "5 ", "1" * 18, "9" * 19, "", "5x", "1767225600039", "1498867199999"],
    "decimal": ["1", "0", "1.", ".5", "01.5", "+1.5", "-1.5", "1.123456789", "1.123456780", "1" * 10 + ".5",
                "9" * 11 + ".5", "1.5 ", "1e3", "0.00000000"],
    "bool": ["true", "false", "TRUE", "True ", "1", ""],
    "any": ["x", "", "\u00e9", "1.5"],
}
LAYOUTS = {  # a good line and its fields' kinds
    "aggTrades": ("3800397495,87648.21000000,0.08185000,5723703861,5723703861,1767225600039409,True,True",
                  ("int", "decimal", "decimal", "int", "int", "int", "bool", "bool")),
    "trades": ("5723703861,87648.21000000,0.08185000,7174.01598850,1767225600039409,False,True",
               ("int", "decimal", "decimal", "any", "int", "bool", "bool")),
}


def near_canonical(data: st.DataObject, layout: str) -> str:
    """The layout's good line, often with one field changed to a variant."""
    good, kinds = LAYOUTS[layout]
    fields = good.split(",")
    if data.draw(st.booleans()):
        k = data.draw(st.integers(0, len(kinds) - 1))
        fields[k] = data.draw(st.sampled_from(FIELD_VARIANTS[kinds[k]]))
    return ",".join(fields)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), layout=st.sampled_from(sorted(LAYOUTS)), line_end=st.sampled_from(["\n", "\r\n"]),
       last_end=st.booleans())
def test_the_compiled_parse_reads_exactly_as_pyarrow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: st.DataObject, layout: str, line_end: str, last_end: bool
) -> None:
    lines = [LAYOUTS[layout][0], *(near_canonical(data, layout) for _ in range(data.draw(st.integers(1, 6))))]
    path = tmp_path / f"BTCUSDT-{layout}-2026-01-01.csv"
    path.write_bytes((line_end.join(lines) + (line_end if last_end else "")).encode())

    def decoded() -> list[tuple[list[Row], list]]:
        return [(rows_of(b.columns), b.problems) for b in read_replay(path, batch_rows=2)]

    compiled = decoded()
    with monkeypatch.context() as patch:
        patch.setattr(csv_kernel, "parse_block", lambda view, kinds, slots: (None, False))
        assert decoded() == compiled


def test_the_compiled_parse_takes_canonical_blocks_and_leaves_others(shared_data: Path) -> None:
    names = ("id", "price", "qty", "first_id", "last_id", "time", "is_buyer_maker", "is_best_match")
    kinds, slots = csv_kernel.layout(names)
    text = (shared_data / SPOT_CSV).read_bytes()
    values, ok = csv_kernel.parse_block(np.frombuffer(text, dtype=np.uint8), kinds, slots)
    assert ok
    rows = [expected_agg(r, time_divisor=1) for r in spot_csv_rows(shared_data)]
    assert list(zip(*values.tolist(), strict=True)) == [(*r[:6], int(r[6])) for r in rows]
    for bad in (text[:-1], text.replace(b"\n", b"\r\n", 1), text.replace(b",True,", b",TRUE,", 1)):
        assert not csv_kernel.parse_block(np.frombuffer(bad, dtype=np.uint8), kinds, slots)[1]

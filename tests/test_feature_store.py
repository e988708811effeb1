"""Feature store: layout, atomic files, corrections, time ranges and compaction, checked against WindowFeatures.row."""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
import threading
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from expected_flow import columns, load_csv
from hypothesis import given, settings
from hypothesis import strategies as st

from core.features import WindowFeatures, vwap_float
from core.schema import FEATURE_COLUMNS
from engine.analysis.window_batch import WindowBatch
from engine.analysis.windows import FlowRules, WindowBuilder
from storage import feature_store
from storage.feature_store import FeatureStore

MIN = 60_000
DAY = 86_400_000
MIDNIGHT = 1_699_920_000_000  # 2023-11-14 00:00:00 UTC
SYMBOLS = ("BTCUSDT", "ETHUSDT")

EXPECTED_TYPES = {
    "window_start": pa.timestamp("ms", tz="UTC"),
    "window_end": pa.timestamp("ms", tz="UTC"),
    "trade_count": pa.int64(), "whale_count": pa.int64(), "first_id": pa.int64(), "last_id": pa.int64(),
    "missing_ids": pa.int64(), "burst": pa.bool_(), "revision": pa.int64(), "liq_count": pa.int64(),
    "next_funding_time": pa.timestamp("ms", tz="UTC"),
}


def window(start: int, symbol: str = "BTCUSDT", close: int = 6_000_012_345_678, **changes: object) -> WindowFeatures:
    """A plausible one-minute window starting at start (ms); close (1e-8) tells versions of a window apart."""
    volume = 123_456_789
    quote = close * volume + 987_654_321
    features = WindowFeatures(
        symbol=symbol, window_start=start, window_end=start + MIN, open=close - 500_000, high=close + 900_000,
        low=close - 700_000, close=close, volume=volume, quote_volume=quote, buy_volume=100_000_000,
        sell_volume=23_456_789, buy_quote=quote - 10**20, sell_quote=10**20, delta=76_543_211, cvd=176_543_211,
        trade_count=42, whale_count=1, whale_buy_quote=10**21, whale_sell_quote=0, first_id=10**12,
        last_id=10**12 + 45, missing_ids=3, whale_threshold=5 * 10**20, burst=True, burst_ratio=2.75,
    )
    return dataclasses.replace(features, **changes)


def rows(table: pa.Table) -> list[dict]:
    """The table as row dicts, window times as ms ints (as WindowFeatures.row() gives them)."""
    for name in ("window_start", "window_end"):
        table = table.set_column(table.schema.get_field_index(name), name, table[name].cast(pa.int64()))
    return table.to_pylist()


def expected(*versions: tuple[WindowFeatures, int]) -> list[dict]:
    """The rows read should give for (features, revision) pairs."""
    return [features.row() | {"revision": revision} for features, revision in versions]


def data_files(root: Path) -> list[Path]:
    """The visible data files under root, sorted."""
    return sorted(p for p in root.rglob("*.parquet") if not p.name.startswith((".", "_")))


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_path_layout_and_file_schema(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    later, earlier = window(MIDNIGHT + 5 * MIN), window(MIDNIGHT + MIN)
    store.add(later)
    store.add(earlier)
    store.add(window(MIDNIGHT, symbol="ETHUSDT"))
    assert data_files(tmp_path) == []
    assert store.flush() == 3

    files = data_files(tmp_path)
    pattern = r"features/symbol=(BTCUSDT|ETHUSDT)/date=2023-11-14/part-\d{13}-\d{6}-[0-9a-f]{8}\.parquet"
    assert [re.fullmatch(pattern, p.relative_to(tmp_path).as_posix()) is not None for p in files] == [True, True]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(p.name for p in files)  # no temps

    btc = next(p for p in files if "symbol=BTCUSDT" in p.as_posix())
    schema = pq.read_schema(btc)
    assert schema.names == [*FEATURE_COLUMNS[1:], "revision"]  # the symbol is the folder's name alone
    for field in schema:
        assert field.type == EXPECTED_TYPES.get(field.name, pa.float64()), field.name
    in_file = pq.ParquetFile(btc).read()
    in_file = in_file.add_column(0, "symbol", pa.array(["BTCUSDT"] * in_file.num_rows))
    assert rows(in_file) == expected((earlier, 0), (later, 0))  # sorted by window_start

    everything = pq.read_table(tmp_path / "features")  # as pandas.read_parquet reads it: hive keys merge with columns
    assert everything.num_rows == 3
    assert sorted(zip(everything["symbol"].to_pylist(), everything["date"].to_pylist(), strict=True)) == [
        ("BTCUSDT", "2023-11-14"), ("BTCUSDT", "2023-11-14"), ("ETHUSDT", "2023-11-14")]


amounts = st.integers(0, 10**17)
# quote_volume stays below 1e27: past a vwap of 1e20, WindowFeatures.vwap itself (Decimal quantize) raises.
features_strategy = st.builds(
    WindowFeatures,
    symbol=st.sampled_from(SYMBOLS),
    window_start=st.integers(MIDNIGHT - 3 * MIN, MIDNIGHT + 3 * MIN).map(lambda t: t - t % MIN),
    window_end=st.integers(0, 2**62),
    open=amounts, high=amounts, low=amounts, close=amounts, volume=st.integers(0, 10**14),
    quote_volume=st.integers(0, 10**27), buy_volume=amounts, sell_volume=amounts, buy_quote=st.integers(0, 10**32),
    sell_quote=st.integers(0, 10**32), delta=st.integers(-(10**17), 10**17), cvd=st.integers(-(10**19), 10**19),
    trade_count=st.integers(0, 2**63 - 1), whale_count=st.integers(0, 10**6), whale_buy_quote=st.integers(0, 10**30),
    whale_sell_quote=st.integers(0, 10**30), first_id=st.integers(0, 2**63 - 1), last_id=st.integers(0, 2**63 - 1),
    missing_ids=st.integers(0, 10**9), whale_threshold=st.integers(0, 10**30), burst=st.booleans(),
    burst_ratio=st.floats(0, 1e9, allow_nan=False),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(features_strategy, st.integers(0, 3)), max_size=12))
def test_read_gives_row_values_one_per_window(versions: list[tuple[WindowFeatures, int]]) -> None:
    winners: dict[tuple[str, int], tuple[WindowFeatures, int]] = {}
    for features, revision in versions:  # one flush: highest revision, then the last added
        key = (features.symbol, features.window_start)
        if key not in winners or revision >= winners[key][1]:
            winners[key] = (features, revision)
    with tempfile.TemporaryDirectory() as folder:
        store = FeatureStore(folder)
        for features, revision in versions:
            store.add(features, revision)
        assert store.flush() == len(winners)
        for symbol in SYMBOLS:
            want = sorted((v for k, v in winners.items() if k[0] == symbol), key=lambda v: v[0].window_start)
            assert rows(store.read(symbol)) == expected(*want)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 10**18),
    st.integers(0, 10**17),
    st.one_of(st.integers(-5, 5), st.integers(-(10**6), 10**6), st.integers(0, 10**18)),
)
def test_vwap_matches_the_decimal_property(volume: int, whole: int, offset: int) -> None:
    quote = max(0, whole * volume + volume // 2 + offset)  # near the .5 where rounding is delicate
    features = window(MIDNIGHT, volume=volume, quote_volume=quote)
    assert vwap_float(quote, volume) == float(features.vwap)
    assert WindowBatch.from_features(features.symbol, [features]).parquet_columns()["vwap"][0] == float(features.vwap)
    assert Decimal(quote) / volume / 10**8 - features.vwap <= Decimal("0.5e-8")


def test_a_batch_of_columns_is_stored_as_its_windows_added_one_by_one(shared_data: Path, tmp_path: Path) -> None:
    rows = load_csv(shared_data / "BTCUSDT-aggTrades-2026-01-01.csv")
    rules = FlowRules(window_ms=1000, whale_min_notional=5_000 * 10**16, whale_percentile=90)
    batch = WindowBuilder("BTCUSDT", rules).add(columns(rows))
    by_batch, one_by_one = FeatureStore(tmp_path / "batch"), FeatureStore(tmp_path / "rows")
    by_batch.add(window(MIDNIGHT - 60_000))  # rows added one by one before a batch keep their order
    by_batch.add_batch(batch)
    one_by_one.add(window(MIDNIGHT - 60_000))
    for features in batch:
        one_by_one.add(features)
    assert by_batch.flush() == one_by_one.flush() == len(batch) + 1 > 500
    assert by_batch.read("BTCUSDT") == one_by_one.read("BTCUSDT")


def test_read_time_range_is_half_open(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    windows = [window(MIDNIGHT + i * MIN) for i in range(5)]
    for w in windows:
        store.add(w)
    store.flush()
    assert rows(store.read("BTCUSDT", MIDNIGHT + MIN, MIDNIGHT + 3 * MIN)) == expected((windows[1], 0), (windows[2], 0))
    assert rows(store.read("BTCUSDT", MIDNIGHT + MIN + 1, MIDNIGHT + 3 * MIN + 1)) == expected(
        (windows[2], 0), (windows[3], 0))
    assert rows(store.read("BTCUSDT", start_ms=MIDNIGHT + 4 * MIN)) == expected((windows[4], 0))
    assert rows(store.read("BTCUSDT", end_ms=MIDNIGHT + MIN)) == expected((windows[0], 0))
    assert store.read("BTCUSDT", MIDNIGHT + 2 * MIN, MIDNIGHT + 2 * MIN).num_rows == 0
    assert store.read("BTCUSDT", MIDNIGHT + DAY).num_rows == 0


def test_correction_with_higher_revision_replaces_the_row(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    first, other = window(MIDNIGHT, close=1_000), window(MIDNIGHT + MIN, close=1_001)
    store.add(first)
    store.add(other)
    store.flush()
    corrected = window(MIDNIGHT, close=2_000)
    store.add(corrected, revision=1)
    store.flush()
    assert rows(store.read("BTCUSDT")) == expected((corrected, 1), (other, 0))
    store.add(window(MIDNIGHT, close=3_000), revision=0)  # written later, but an older revision: ignored
    store.flush()
    assert rows(store.read("BTCUSDT")) == expected((corrected, 1), (other, 0))
    assert len(data_files(tmp_path)) == 3  # the old files stay until compact


def test_same_revision_in_a_later_flush_wins(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    versions = [window(MIDNIGHT, close=close) for close in (1_000, 2_000, 3_000)]
    for version in versions:  # flushes within the same millisecond are still ordered
        store.add(version)
        store.flush()
    assert rows(store.read("BTCUSDT")) == expected((versions[-1], 0))


def test_one_flush_keeps_one_row_per_window(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    high, low = window(MIDNIGHT, close=1), window(MIDNIGHT, close=2)
    first, last = window(MIDNIGHT + MIN, close=3), window(MIDNIGHT + MIN, close=4)
    store.add(high, revision=2)
    store.add(low, revision=1)  # added later, but a lower revision
    store.add(first, revision=5)
    store.add(last, revision=5)  # same revision: the last added wins
    assert store.flush() == 2
    assert rows(store.read("BTCUSDT")) == expected((high, 2), (last, 5))
    assert pq.read_table(data_files(tmp_path)[0]).num_rows == 2


def test_windows_either_side_of_midnight_land_in_two_date_partitions(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    before, after = window(MIDNIGHT - MIN), window(MIDNIGHT)
    store.add(after)
    store.add(before)
    assert store.flush() == 2
    folders = sorted(p.parent.name for p in data_files(tmp_path))
    assert folders == ["date=2023-11-13", "date=2023-11-14"]
    assert rows(store.read("BTCUSDT")) == expected((before, 0), (after, 0))
    assert rows(store.read("BTCUSDT", MIDNIGHT - MIN, MIDNIGHT)) == expected((before, 0))
    assert rows(store.read("BTCUSDT", MIDNIGHT)) == expected((after, 0))


def test_crash_leftovers_are_invisible(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    w = window(MIDNIGHT)
    store.add(w)
    store.flush()
    partition = data_files(tmp_path)[0].parent
    (partition / ".part-0123abcd.tmp").write_bytes(b"PAR1 half a file")
    (partition / "_part-crashed.parquet").write_bytes(b"garbage")
    lone = tmp_path / "features" / "symbol=ETHUSDT" / "date=2023-11-14"
    lone.mkdir(parents=True)
    (lone / ".part-feedbeef.tmp").write_bytes(b"garbage")

    assert rows(store.read("BTCUSDT")) == expected((w, 0))
    assert store.read("ETHUSDT").num_rows == 0
    assert store.symbols() == ["BTCUSDT"]
    assert store.latest_window_end("ETHUSDT") is None
    assert store.latest_window_end("BTCUSDT") == w.window_end


def test_a_failed_write_leaves_no_file_and_keeps_the_buffer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(table: pa.Table, where: Path, **_: object) -> None:
        Path(where).write_bytes(b"PAR1 partial")
        raise OSError("disk full")

    store = FeatureStore(tmp_path)
    w = window(MIDNIGHT)
    store.add(w)
    monkeypatch.setattr(feature_store.pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        store.flush()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert store.read("BTCUSDT").num_rows == 0
    monkeypatch.undo()
    assert store.flush() == 1
    assert rows(store.read("BTCUSDT")) == expected((w, 0))


def test_flush_interval_flushes_on_add(tmp_path: Path) -> None:
    clock = FakeClock()
    store = FeatureStore(tmp_path, flush_interval=5.0, clock=clock)
    store.add(window(MIDNIGHT))
    clock.now += 4.9
    store.add(window(MIDNIGHT + MIN))
    assert data_files(tmp_path) == []
    clock.now += 0.1
    store.add(window(MIDNIGHT + 2 * MIN))
    assert len(data_files(tmp_path)) == 1
    assert store.read("BTCUSDT").num_rows == 3
    clock.now += 4.0  # the interval counts from that flush
    store.add(window(MIDNIGHT + 3 * MIN))
    assert store.read("BTCUSDT").num_rows == 3
    store.close()
    assert store.read("BTCUSDT").num_rows == 4
    assert store.flush() == 0


def test_a_full_buffer_flushes_on_add(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, max_buffered_rows=3, clock=FakeClock())
    for i in range(7):
        store.add(window(MIDNIGHT + i * MIN))
    assert len(data_files(tmp_path)) == 2
    assert store.read("BTCUSDT").num_rows == 6


def test_write_behind_stores_the_same_rows_and_flush_waits_for_the_write(tmp_path: Path) -> None:
    behind = FeatureStore(tmp_path / "behind", max_buffered_rows=3, clock=FakeClock(), write_behind=True)
    inline = FeatureStore(tmp_path / "inline", max_buffered_rows=3, clock=FakeClock())
    for store in (behind, inline):
        for i in range(7):
            store.add(window(MIDNIGHT + i * MIN, close=i), revision=i % 2)
        store.add(window(MIDNIGHT + 2 * MIN, close=99), revision=5)  # a correction of a written window
    assert (behind.flush(), inline.flush()) == (3 + 2, 2)  # the write in flight, then the last two rows
    assert len(data_files(tmp_path / "behind")) == 3
    assert behind.read("BTCUSDT") == inline.read("BTCUSDT")
    behind.close()


def test_a_failed_write_behind_keeps_its_rows_for_the_next_flush(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(table: pa.Table, where: Path, **_: object) -> None:
        raise OSError("disk full")

    store = FeatureStore(tmp_path, max_buffered_rows=2, clock=FakeClock(), write_behind=True)
    monkeypatch.setattr(feature_store.pq, "write_table", crash)
    store.add(window(MIDNIGHT))
    store.add(window(MIDNIGHT + MIN))  # handed to the writer thread, which fails
    store.add(window(MIDNIGHT + 2 * MIN))
    with pytest.raises(OSError, match="disk full"):
        store.flush()
    monkeypatch.undo()
    assert store.flush() == 3
    assert store.read("BTCUSDT").num_rows == 3
    store.close()


def test_compact_leaves_one_file_with_the_same_rows(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    for i in range(4):
        store.add(window(MIDNIGHT + i * MIN, close=i))
        store.add(window(MIDNIGHT - MIN, close=i))
        store.flush()
    store.add(window(MIDNIGHT + MIN, close=99), revision=1)
    store.flush()
    partition = tmp_path / "features" / "symbol=BTCUSDT" / "date=2023-11-14"
    stale, fresh = partition / ".part-stale.tmp", partition / ".part-fresh.tmp"
    stale.write_bytes(b"crashed long ago")
    fresh.write_bytes(b"a writer right now")
    os.utime(stale, (0, 0))
    before = store.read("BTCUSDT")
    assert len(list(partition.glob("*.parquet"))) == 5

    store.compact("BTCUSDT", "2023-11-14")
    assert len(list(partition.glob("*.parquet"))) == 1
    assert not stale.exists() and fresh.exists()
    assert store.read("BTCUSDT").equals(before)
    assert rows(store.read("BTCUSDT", MIDNIGHT + MIN, MIDNIGHT + 2 * MIN)) == expected(
        (window(MIDNIGHT + MIN, close=99), 1))
    assert len(list(partition.parent.glob("date=2023-11-13/*.parquet"))) == 4  # other partitions untouched

    store.compact("BTCUSDT", "2023-11-14")  # already compact: nothing changes
    assert len(list(partition.glob("*.parquet"))) == 1
    store.add(window(MIDNIGHT + 2 * MIN, close=1234))  # a later write of the same revision still wins
    store.flush()
    assert rows(store.read("BTCUSDT", MIDNIGHT + 2 * MIN, MIDNIGHT + 3 * MIN)) == expected(
        (window(MIDNIGHT + 2 * MIN, close=1234), 0))
    store.compact("ETHUSDT", "2023-11-14")  # no such partition: nothing to do


def test_latest_window_end_and_symbols(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    assert store.symbols() == []
    assert store.latest_window_end("BTCUSDT") is None
    assert store.read("BTCUSDT").schema == feature_store.SCHEMA
    assert store.read("BTCUSDT").num_rows == 0
    store.add(window(MIDNIGHT - 2 * MIN, symbol="ETHUSDT"))
    store.add(window(MIDNIGHT + 3 * MIN))
    store.add(window(MIDNIGHT + MIN))
    store.add(window(MIDNIGHT - 5 * MIN, symbol="SOLUSDT"))
    assert store.symbols() == []  # still buffered
    store.flush()
    assert store.symbols() == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert store.latest_window_end("BTCUSDT") == MIDNIGHT + 4 * MIN
    assert store.latest_window_end("ETHUSDT") == MIDNIGHT - MIN
    assert store.latest_window_end("XRPUSDT") is None


def test_unsafe_names_are_rejected(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    with pytest.raises(ValueError, match="symbol"):
        store.add(window(MIDNIGHT, symbol="../x"))
    with pytest.raises(ValueError, match="symbol"):
        store.read("")
    with pytest.raises(ValueError, match="date"):
        store.compact("BTCUSDT", "../../etc")
    assert store.flush() == 0


def test_reads_stay_consistent_while_writing_and_compacting(tmp_path: Path) -> None:
    writer_store, reader = FeatureStore(tmp_path), FeatureStore(tmp_path)
    errors: list[BaseException] = []
    done = threading.Event()

    def write() -> None:
        try:
            for round_ in range(40):
                for i in range(round_ % 7, 30, 3):
                    writer_store.add(window(MIDNIGHT + i * MIN, close=round_), revision=round_)
                writer_store.flush()
                if round_ % 6 == 5:
                    writer_store.compact("BTCUSDT", "2023-11-14")
        except BaseException as error:
            errors.append(error)
        finally:
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    reads = 0
    while not done.is_set() or reads == 0:
        table = reader.read("BTCUSDT")
        starts = table["window_start"].cast(pa.int64()).to_pylist()
        assert starts == sorted(set(starts))
        assert table["close"].to_pylist() == [r / 10**8 for r in table["revision"].to_pylist()]
        reads += 1
    thread.join()
    assert errors == []
    assert reader.read("BTCUSDT").num_rows == 30


history_steps = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from(SYMBOLS), st.integers(-2, 2), st.integers(0, 2)),
        st.just(("flush",)),
        st.just(("compact",)),
    ),
    max_size=30,
)


@settings(max_examples=40, deadline=None)
@given(history_steps)
def test_any_history_reads_like_a_dict_of_the_newest_versions(steps: list[tuple]) -> None:
    model: dict[tuple[str, int], tuple[WindowFeatures, int]] = {}
    pending: list[tuple[WindowFeatures, int]] = []
    with tempfile.TemporaryDirectory() as folder:
        store = FeatureStore(folder, clock=FakeClock())
        for n, step in enumerate(steps):
            if step[0] == "add":
                _, symbol, minute, revision = step
                version = (window(MIDNIGHT + minute * MIN, symbol=symbol, close=n), revision)
                store.add(*version)
                pending.append(version)
            elif step[0] == "flush":
                store.flush()
                for features, revision in pending:
                    key = (features.symbol, features.window_start)
                    if key not in model or revision >= model[key][1]:
                        model[key] = (features, revision)
                pending.clear()
            else:
                for symbol in SYMBOLS:
                    for date in ("2023-11-13", "2023-11-14"):
                        store.compact(symbol, date)
        for symbol in SYMBOLS:
            want = sorted((v for k, v in model.items() if k[0] == symbol), key=lambda v: v[0].window_start)
            assert rows(store.read(symbol)) == expected(*want)
        assert store.symbols() == sorted({symbol for symbol, _ in model})

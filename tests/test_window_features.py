"""Window features against values computed independently from the raw Binance records."""

from __future__ import annotations

import itertools
from decimal import Decimal

import numpy as np
import pytest
from expected_flow import columns, expected_windows, load_csv
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.analysis.columns import TradeColumns
from engine.analysis.kernels import limbs_to_float, window_sums
from engine.analysis.window_batch import limbs_to_ints
from engine.analysis.windows import FlowRules, WindowBuilder, round_4

E8 = Decimal(10**8)
E16 = Decimal(10**16)


def as_decimal(features) -> dict:
    price_fields = ("open", "high", "low", "close", "volume", "buy_volume", "sell_volume", "delta", "cvd")
    quote_fields = ("quote_volume", "buy_quote", "sell_quote", "whale_buy_quote", "whale_sell_quote")
    d = {k: getattr(features, k) for k in ("window_start", "window_end", "trade_count", "whale_count",
                                           "first_id", "last_id", "missing_ids")}
    d.update({k: Decimal(getattr(features, k)) / E8 for k in price_fields})
    d.update({k: Decimal(getattr(features, k)) / E16 for k in quote_fields})
    d["vwap"] = features.vwap
    return d


@pytest.fixture(scope="module")
def btc_rows(shared_data) -> list[dict]:
    return load_csv(shared_data / "BTCUSDT-aggTrades-2026-01-01.csv")


def run_builder(cols: TradeColumns, rules: FlowRules, batch: int) -> list:
    builder = WindowBuilder("BTCUSDT", rules)
    out = []
    for start in range(0, len(cols), batch):
        out.extend(builder.add(cols.take(start, start + batch)))
    out.extend(builder.close_through(2**62))
    return out


@pytest.mark.parametrize("window_s", [1, 5, 60])
def test_every_column_matches_the_raw_records(btc_rows, window_s: int) -> None:
    rules = FlowRules(window_ms=window_s * 1000, whale_min_notional=20_000 * 10**16, whale_percentile=0)
    got = [as_decimal(f) for f in run_builder(columns(btc_rows), rules, batch=100_000)]
    expected = expected_windows(btc_rows, window_s * 1000, Decimal(20_000))
    assert len(got) == len(expected)
    assert got == expected
    assert sum(e["whale_count"] for e in expected) > 0


def test_live_sized_batches_give_the_same_features_as_one_bulk_batch(btc_rows) -> None:
    cols = columns(btc_rows)
    rules = FlowRules(window_ms=5000, whale_min_notional=10_000 * 10**16, whale_percentile=99.5)
    bulk = run_builder(cols, rules, batch=len(cols))
    assert run_builder(cols, rules, batch=1) == bulk
    assert run_builder(cols, rules, batch=37) == bulk


def test_adaptive_whale_threshold_is_the_percentile_of_the_previous_hour(btc_rows) -> None:
    rules = FlowRules(window_ms=5000, whale_min_notional=1 * 10**16, whale_percentile=99.0)
    windows = run_builder(columns(btc_rows), rules, batch=1000)
    notional = [(r["T"], float(r["p"] * E8) * float(r["q"] * E8)) for r in btc_rows]
    for w in windows[::25]:
        minute = w.window_start // 60_000 * 60_000
        before = [n for t, n in notional if minute - 3_600_000 <= t < minute]
        expected = max(1e16, float(np.percentile(before, 99.0, method="higher"))) if before else 1e16
        assert w.whale_threshold == int(expected)
    assert any(w.whale_count for w in windows)


def test_a_gap_in_the_input_shows_in_missing_ids(btc_rows) -> None:
    kept = btc_rows[:1000] + btc_rows[1010:]
    windows = run_builder(columns(kept), FlowRules(whale_percentile=0), batch=500)
    assert sum(w.missing_ids for w in windows) == 10
    hole = next(w for w in windows if w.missing_ids)
    assert hole.first_id <= btc_rows[1010]["a"] <= hole.last_id


def test_cvd_restarts_at_midnight_utc(btc_rows) -> None:
    rows = [dict(r, T=r["T"] - 6 * 60_000) for r in btc_rows]  # the first 6 minutes fall on the previous day
    windows = run_builder(columns(rows), FlowRules(whale_percentile=0), batch=999)
    after = [w for w in windows if w.window_start >= 1767225600000]
    assert after[0].cvd == after[0].delta
    assert windows[0].cvd == windows[0].delta


@st.composite
def trade_batches(draw) -> TradeColumns:
    n = draw(st.integers(1, 300))
    times = np.cumsum(np.array(draw(st.lists(st.integers(0, 4000), min_size=n, max_size=n)), dtype=np.int64))
    prices = np.array(draw(st.lists(st.integers(1, 2**40), min_size=n, max_size=n)), dtype=np.int64)
    qtys = np.array(draw(st.lists(st.integers(1, 2**40), min_size=n, max_size=n)), dtype=np.int64)
    sells = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    ids = np.arange(1, n + 1, dtype=np.int64)
    return TradeColumns("X", ids, ids, ids, prices, qtys, times + 1_700_000_000_000, sells)


@settings(max_examples=60, deadline=None)
@given(trade_batches(), st.integers(1, 50))
def test_invariants_hold_for_any_trades(cols: TradeColumns, batch: int) -> None:
    builder = WindowBuilder("X", FlowRules(whale_percentile=0))
    windows = []
    for start in range(0, len(cols), batch):
        windows.extend(builder.add(cols.take(start, start + batch)))
    windows.extend(builder.close_through(2**62))
    assert sum(w.trade_count for w in windows) == len(cols)
    cvd = 0
    for w in windows:
        assert w.buy_volume + w.sell_volume == w.volume
        assert w.buy_quote + w.sell_quote == w.quote_volume
        assert w.low <= min(w.open, w.close) and max(w.open, w.close) <= w.high
        cvd += w.delta
        assert w.cvd == cvd  # one UTC day: the sum of deltas is the CVD
    exact_total = sum(int(p) * int(q) for p, q in zip(cols.price, cols.qty, strict=True))
    assert sum(w.quote_volume for w in windows) == exact_total


@given(st.lists(st.tuples(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1), st.booleans()), min_size=1,
                max_size=40))
@example([(2**63 - 1, 2**63 - 1, False)] * 3 + [(2**52 + 1, 2**53 - 1, True)])
def test_quote_sums_are_exact_and_their_floats_correctly_rounded(trades) -> None:
    price, qty, sells = (np.array(c, dtype=dtype) for c, dtype in zip(zip(*trades, strict=True),
                                                                       (np.int64, np.int64, bool), strict=True))
    starts = np.repeat(np.array([0, 5000], dtype=np.int64), [len(trades) // 2, len(trades) - len(trades) // 2])
    ids = np.arange(len(trades), dtype=np.int64)
    first, _, quotes = window_sums(starts, price, qty, sells, np.full(len(trades), np.inf), ids, ids, -1)
    bounds = [*first.tolist(), len(trades)]
    for w, (a, b) in enumerate(itertools.pairwise(bounds)):
        chosen = trades[a:b]
        buy = sum(p * q for p, q, sell in chosen if not sell)
        sell = sum(p * q for p, q, s in chosen if s)
        assert limbs_to_ints(quotes[w]) == [buy + sell, buy, sell, 0, 0]
        assert limbs_to_float(quotes[w]).tolist() == [float(buy + sell), float(buy), float(sell), 0.0, 0.0]


@given(st.lists(st.one_of(st.floats(0, 1e6), st.integers(0, 10**8).map(lambda k: k / 20_000),
                          st.integers(0, 10**6).map(lambda k: (k + 0.5) / 10**4)), max_size=50))
def test_round_4_is_pythons_round(values) -> None:
    assert round_4(np.array(values, dtype=np.float64)).tolist() == [round(v, 4) for v in values]

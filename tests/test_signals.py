"""Signal detection: each rule fires at its threshold and not just below, with direction, severity and evidence."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.events import Signal
from core.features import PRICE_SCALE, WindowFeatures
from engine.analysis.context import SymbolContext
from engine.signals.detector import SignalDetector
from engine.signals.thresholds import SignalThresholds

T0 = 1_700_000_000_000  # ms, a minute boundary
MINUTE = 60_000
FIVE_S = 5_000


def scaled(value: str | int) -> int:
    """A human amount as a 1e-8 scaled integer."""
    return int(Decimal(str(value)) * PRICE_SCALE)


def window(
    i: int,
    *,
    symbol: str = "BTCUSDT",
    length: int = FIVE_S,
    buy: str = "1",
    sell: str = "1",
    open_: str = "100",
    close: str | None = None,
    trades: int = 10,
    whales: int = 0,
    whale_buy: str = "0",
    whale_sell: str = "0",
    burst: bool = False,
    burst_ratio: float = 0.0,
) -> WindowFeatures:
    """The i-th window of `length` ms after T0, its amounts given in human units."""
    o, c = scaled(open_), scaled(close if close is not None else open_)
    b, s = scaled(buy), scaled(sell)
    return WindowFeatures(
        symbol=symbol, window_start=T0 + i * length, window_end=T0 + (i + 1) * length,
        open=o, high=max(o, c), low=min(o, c), close=c,
        volume=b + s, quote_volume=(b + s) * c, buy_volume=b, sell_volume=s, buy_quote=b * c, sell_quote=s * c,
        delta=b - s, cvd=b - s, trade_count=trades,
        whale_count=whales, whale_buy_quote=scaled(whale_buy) * PRICE_SCALE,
        whale_sell_quote=scaled(whale_sell) * PRICE_SCALE,
        first_id=i * 1000, last_id=i * 1000 + trades - 1, missing_ids=0,
        whale_threshold=scaled("100000") * PRICE_SCALE, burst=burst, burst_ratio=burst_ratio,
    )


def run(windows: list[WindowFeatures], thresholds: SignalThresholds | None = None) -> list[Signal]:
    """Feed the windows in order (context first, as the engine does) and collect every signal."""
    detector = SignalDetector(thresholds or SignalThresholds(), clock=lambda: 1234.5)
    context = SymbolContext(windows[0].symbol)
    signals = []
    for w in windows:
        context.add(w)
        signals.extend(detector.detect(w, context))
    return signals


def last_of(kind: str, windows: list[WindowFeatures], thresholds: SignalThresholds | None = None) -> Signal | None:
    """The signal of `kind` that the last window gives, with the earlier windows as its context."""
    detector = SignalDetector(thresholds or SignalThresholds(), clock=lambda: 1234.5)
    context = SymbolContext(windows[0].symbol)
    for w in windows:
        context.add(w)
    found = [s for s in detector.detect(windows[-1], context) if s.kind == kind]
    return found[0] if found else None


# --- whale -------------------------------------------------------------------------------------------------------


def test_whale_fires_with_one_whale_and_reports_readable_evidence() -> None:
    signal = last_of("whale", [window(0, whales=1, whale_buy="1234567.89", buy="3", sell="1", close="100.5")])
    assert signal is not None
    assert (signal.direction, signal.severity) == ("buy", 1)
    assert signal.id == f"BTCUSDT-whale-{T0}"
    assert (signal.window_start, signal.window_end, signal.created_at) == (T0, T0 + FIVE_S, 1234.5)
    assert signal.evidence == {
        "whale_count": 1, "whale_buy_quote": 1234567.89, "whale_sell_quote": 0.0, "whale_threshold_quote": 100000.0,
        "whale_cluster": 3, "close": 100.5, "delta": 2.0, "cvd": 2.0,
    }


def test_no_whale_no_signal() -> None:
    assert last_of("whale", [window(0, whales=0)]) is None


@pytest.mark.parametrize(("count", "severity"), [(1, 1), (2, 1), (3, 2), (5, 2), (6, 3), (40, 3)])
def test_whale_severity_by_cluster_size(count: int, severity: int) -> None:
    signal = last_of("whale", [window(0, whales=count, whale_sell="500000")])
    assert signal is not None and signal.severity == severity and signal.direction == "sell"


@pytest.mark.parametrize(
    ("buy", "sell", "direction"), [("200000", "100000", "buy"), ("100000", "200000", "sell"), ("5", "5", "neutral")]
)
def test_whale_direction_is_the_side_with_more_whale_quote(buy: str, sell: str, direction: str) -> None:
    signal = last_of("whale", [window(0, whales=2, whale_buy=buy, whale_sell=sell)])
    assert signal is not None and signal.direction == direction


# --- burst -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ratio", "severity"), [(2.0, 1), (4.99, 1), (5.0, 2), (9.99, 2), (10.0, 3), (50.0, 3)])
def test_burst_severity_by_ratio(ratio: float, severity: int) -> None:
    signal = last_of("burst", [window(0, burst=True, burst_ratio=ratio, trades=300)])
    assert signal is not None and signal.severity == severity
    assert signal.evidence["burst_ratio"] == ratio and signal.evidence["trade_count"] == 300
    assert signal.evidence["burst_severity_2"] == 5.0


def test_no_burst_flag_no_signal_whatever_the_ratio() -> None:
    assert last_of("burst", [window(0, burst=False, burst_ratio=20.0)]) is None


@pytest.mark.parametrize(("buy", "sell", "direction"), [("3", "1", "buy"), ("1", "3", "sell"), ("2", "2", "neutral")])
def test_burst_direction_follows_the_window_delta(buy: str, sell: str, direction: str) -> None:
    signal = last_of("burst", [window(0, burst=True, burst_ratio=6.0, buy=buy, sell=sell)])
    assert signal is not None and signal.direction == direction


# --- imbalance (1m) ----------------------------------------------------------------------------------------------


def minute_of(buy: str, sell: str, trades: int = 5) -> list[WindowFeatures]:
    """Twelve 5 s windows (one minute) with the same flow each."""
    return [window(i, buy=buy, sell=sell, trades=trades) for i in range(12)]


@pytest.mark.parametrize(
    ("buy", "sell", "direction", "severity"),
    [
        ("75", "25", "buy", 1),  # 0.75: at the ratio
        ("874", "126", "buy", 1),  # just below (1 + 0.75) / 2
        ("875", "125", "buy", 2),
        ("949", "51", "buy", 2),
        ("95", "5", "buy", 3),
        ("25", "75", "sell", 1),
        ("5", "95", "sell", 3),
    ],
)
def test_imbalance_fires_at_the_ratio_with_direction_and_severity(
    buy: str, sell: str, direction: str, severity: int
) -> None:
    signal = last_of("imbalance", minute_of(buy, sell))
    assert signal is not None and (signal.direction, signal.severity) == (direction, severity)
    assert signal.evidence["trade_count_1m"] == 60 and signal.evidence["imbalance_ratio"] == 0.75
    assert signal.evidence["share"] == float(Decimal(max(buy, sell, key=int)) / (int(buy) + int(sell)))


def test_imbalance_evidence() -> None:
    signal = last_of("imbalance", minute_of("8", "2"))
    assert signal is not None
    assert signal.evidence == {
        "share": 0.8, "buy_share": 0.8, "sell_share": 0.2, "volume_1m": 120.0, "trade_count_1m": 60,
        "imbalance_ratio": 0.75, "imbalance_min_trades": 50, "close": 100.0, "delta": 6.0, "cvd": 6.0,
    }


def test_imbalance_just_below_the_ratio_does_not_fire() -> None:
    assert last_of("imbalance", minute_of("749", "251")) is None
    assert last_of("imbalance", minute_of("251", "749")) is None


def test_imbalance_needs_enough_trades_in_the_minute() -> None:
    assert last_of("imbalance", minute_of("9", "1", trades=4)) is None  # 48 trades
    assert last_of("imbalance", [*minute_of("9", "1", trades=4), window(12, buy="9", sell="1", trades=6)]) is not None


def test_imbalance_only_counts_the_last_minute() -> None:
    old_buying = [window(i, buy="100", sell="0", trades=100) for i in range(12)]
    balanced = [window(12 + i, buy="1", sell="1", trades=10) for i in range(12)]
    assert last_of("imbalance", [*old_buying, *balanced]) is None


# --- cvd divergence (5m) -----------------------------------------------------------------------------------------


def five_minutes(close: str, buy: str, sell: str) -> list[WindowFeatures]:
    """Five 1-minute windows: the first opens at 100, every window closes at `close`, same flow each."""
    return [
        window(i, length=MINUTE, open_="100" if i == 0 else close, close=close, buy=buy, sell=sell, trades=20)
        for i in range(5)
    ]


@pytest.mark.parametrize(
    ("close", "buy", "sell", "direction", "severity"),
    [
        ("100.1", "4", "6", "sell", 1),  # +0.1% on delta share -0.2: both at threshold
        ("99.9", "6", "4", "buy", 1),  # the mirror
        ("100.2", "3", "7", "sell", 2),  # 2x both
        ("100.2", "35", "65", "sell", 1),  # price 2x, share only 1.5x
        ("100.4", "35", "65", "sell", 1),
        ("100.4", "1", "9", "sell", 3),  # 4x both (+0.4%, -0.8)
        ("99.6", "9", "1", "buy", 3),
        ("100.39", "1", "9", "sell", 2),  # price just below 4x
    ],
)
def test_cvd_divergence_fires_with_direction_and_severity(
    close: str, buy: str, sell: str, direction: str, severity: int
) -> None:
    signal = last_of("cvd_divergence", five_minutes(close, buy, sell))
    assert signal is not None and (signal.direction, signal.severity) == (direction, severity)


def test_cvd_divergence_evidence() -> None:
    signal = last_of("cvd_divergence", five_minutes("100.1", "4", "6"))
    assert signal is not None
    assert signal.evidence == {
        "price_change_pct_5m": 0.1, "delta_share_5m": -0.2, "delta_5m": -10.0, "volume_5m": 50.0,
        "divergence_min_price_pct": 0.1, "divergence_min_delta_share": 0.2,
        "close": 100.1, "delta": -2.0, "cvd": -2.0,
    }


@pytest.mark.parametrize(
    ("close", "buy", "sell"),
    [
        ("100.099", "4", "6"),  # price just below 0.1%
        ("100.1", "4.005", "5.995"),  # delta share -0.199
        ("99.901", "6", "4"),
        ("100.5", "6", "4"),  # price up on net buying: agreement, not divergence
        ("99.5", "4", "6"),
        ("100", "1", "9"),
    ],
)
def test_cvd_divergence_does_not_fire_below_thresholds_or_on_agreement(close: str, buy: str, sell: str) -> None:
    assert last_of("cvd_divergence", five_minutes(close, buy, sell)) is None


# --- absorption (1m against the 1h mean) ------------------------------------------------------------------------


def hour_then(
    quiet: int, buy: str, sell: str, close: str = "100", thresholds: SignalThresholds | None = None
) -> Signal | None:
    """`quiet` 1-minute windows of volume 1 from the hour's first minute, then its last minute of buy/sell closing at
    `close` (the data covers the whole hour): its absorption signal."""
    windows = [window(i, length=MINUTE, buy="0.5", sell="0.5") for i in range(quiet)]
    windows.append(window(59, length=MINUTE, buy=buy, sell=sell, close=close, trades=40))
    return last_of("absorption", windows, thresholds)


@pytest.mark.parametrize(
    ("quiet", "volume", "severity"),
    [(57, 3, 1), (54, 6, 2), (48, 12, 3)],  # hour volume is 60 each time: mean 1 per minute, ratio = volume
)
def test_absorption_severity_by_volume_ratio(quiet: int, volume: int, severity: int) -> None:
    sell = str(Decimal(volume) * Decimal("0.7"))
    buy = str(Decimal(volume) * Decimal("0.3"))
    signal = hour_then(quiet, buy, sell, close="100.02")
    assert signal is not None and signal.severity == severity
    assert signal.direction == "buy"  # heavy selling held: buyers absorbing
    assert signal.evidence["volume_ratio"] == volume


def test_absorption_of_heavy_buying_is_a_sell_signal_with_evidence() -> None:
    signal = hour_then(57, "2.4", "0.6", close="99.98")
    assert signal is not None and (signal.direction, signal.severity) == ("sell", 1)
    assert signal.evidence == {
        "buy_share_1m": 0.8, "sell_share_1m": 0.2, "price_change_pct_1m": -0.02, "volume_1m": 3.0,
        "mean_volume_per_minute_1h": 1.0, "volume_ratio": 3.0, "windows_1h": 58,
        "absorption_min_share": 0.7, "absorption_max_price_pct": 0.02, "absorption_min_volume_ratio": 3.0,
        "close": 99.98, "delta": 1.8, "cvd": 1.8,
    }


def test_absorption_waits_for_15_minutes_of_history_and_averages_over_the_time_covered() -> None:
    fresh = [window(i, length=MINUTE, buy="0.5", sell="0.5") for i in range(5)]
    fresh.append(window(5, length=MINUTE, buy="0.9", sell="9", close="100.01", trades=40))
    assert last_of("absorption", fresh, None) is None  # 6 minutes of data: no hourly mean to compare with yet
    later = [window(i, length=MINUTE, buy="0.5", sell="0.5") for i in range(19)]
    later.append(window(19, length=MINUTE, buy="0.9", sell="9", close="100.01", trades=40))
    signal = last_of("absorption", later, None)
    assert signal is not None and signal.evidence["mean_volume_per_minute_1h"] == pytest.approx((19 + 9.9) / 20)


def test_absorption_does_not_fire_just_below_each_threshold() -> None:
    assert hour_then(57, "0.9", "2.1") is not None  # the reference case fires
    assert hour_then(58, "0.9", "2.1") is None  # ratio 3 / (61 / 60) = 2.95
    assert hour_then(57, "0.93", "2.07") is None  # sell share 0.69
    assert hour_then(57, "0.9", "2.1", close="100.021") is None  # price moved 0.021%
    assert hour_then(57, "0.9", "2.1", close="99.979") is None


def test_absorption_thresholds_are_configurable() -> None:
    strict = SignalThresholds(absorption_min_volume_ratio=4.0)
    assert hour_then(57, "0.9", "2.1", thresholds=strict) is None
    assert hour_then(56, "1.2", "2.8", thresholds=strict) is not None


# --- ids, cooldown, robustness -----------------------------------------------------------------------------------


def busy_windows(n: int, symbol: str = "BTCUSDT") -> list[WindowFeatures]:
    """n consecutive 5 s windows, each with a whale and a burst."""
    return [window(i, symbol=symbol, whales=1, whale_buy="200000", burst=True, burst_ratio=3.0) for i in range(n)]


def test_ids_are_deterministic_across_replays_and_clocks() -> None:
    windows = busy_windows(30)
    first = SignalDetector(SignalThresholds(), clock=lambda: 1.0)
    second = SignalDetector(SignalThresholds(), clock=lambda: 999.0)
    ids = []
    for detector in (first, second):
        context = SymbolContext("BTCUSDT")
        found = []
        for w in windows:
            context.add(w)
            found.extend(detector.detect(w, context))
        ids.append([s.id for s in found])
    assert ids[0] == ids[1] == [
        f"BTCUSDT-whale-{T0}", f"BTCUSDT-burst-{T0}",
        f"BTCUSDT-whale-{T0 + MINUTE}", f"BTCUSDT-burst-{T0 + MINUTE}",
        f"BTCUSDT-whale-{T0 + 2 * MINUTE}", f"BTCUSDT-burst-{T0 + 2 * MINUTE}",
    ]


def test_cooldown_runs_in_data_time_and_counts_suppressed_signals() -> None:
    wall = [100.0]
    detector = SignalDetector(SignalThresholds(cooldown_s=60.0), clock=lambda: wall[0])
    context = SymbolContext("BTCUSDT")
    emitted = []
    for w in busy_windows(13):  # windows end at 5 s .. 65 s
        context.add(w)
        emitted.extend(detector.detect(w, context))
        wall[0] += 3600.0  # wall time races ahead: must not matter
    whales = [s for s in emitted if s.kind == "whale"]
    assert [s.window_end - T0 for s in whales] == [5_000, 65_000]  # the 12th window after is 60 s later
    assert detector.suppressed[("BTCUSDT", "whale")] == 11
    assert detector.suppressed[("BTCUSDT", "burst")] == 11
    assert whales[1].created_at == 100.0 + 12 * 3600.0


def test_cooldown_is_per_symbol_and_kind() -> None:
    detector = SignalDetector(SignalThresholds())
    btc, eth = SymbolContext("BTCUSDT"), SymbolContext("ETHUSDT")
    b, e = busy_windows(1)[0], busy_windows(1, "ETHUSDT")[0]
    btc.add(b)
    eth.add(e)
    assert {(s.symbol, s.kind) for s in detector.detect(b, btc) + detector.detect(e, eth)} == {
        ("BTCUSDT", "whale"), ("BTCUSDT", "burst"), ("ETHUSDT", "whale"), ("ETHUSDT", "burst"),
    }
    assert not detector.suppressed


def test_a_redetected_window_inside_the_cooldown_is_suppressed() -> None:
    detector = SignalDetector(SignalThresholds())
    context = SymbolContext("BTCUSDT")
    w = busy_windows(1)[0]
    context.add(w)
    assert len(detector.detect(w, context)) == 2
    assert detector.detect(w, context) == []
    assert detector.suppressed[("BTCUSDT", "whale")] == 1


def test_zero_cooldown_emits_every_window() -> None:
    signals = run(busy_windows(5), SignalThresholds(cooldown_s=0))
    assert len([s for s in signals if s.kind == "whale"]) == 5


def test_context_rules_judge_a_corrected_window_as_of_its_own_end() -> None:
    detector = SignalDetector(SignalThresholds())
    context = SymbolContext("BTCUSDT")
    for w in minute_of("9", "1") + [window(12 + i, buy="1", sell="1") for i in range(12)]:
        context.add(w)
    corrected = window(11, buy="9", sell="1", trades=6)  # the newest minute is balanced, this one's minute is not
    context.add(corrected)
    assert "imbalance" in [s.kind for s in detector.detect(corrected, context)]
    assert "imbalance" not in [s.kind for s in detector.detect(context.windows[-1], context)]


def test_detect_never_raises_on_an_empty_context_or_zero_volume() -> None:
    detector = SignalDetector(SignalThresholds())
    empty = window(0, buy="0", sell="0", open_="0", trades=0)
    assert detector.detect(empty, SymbolContext("BTCUSDT")) == []
    context = SymbolContext("BTCUSDT")
    for i in range(20):
        zero = window(i, buy="0", sell="0", open_="0", trades=0)
        context.add(zero)
        assert detector.detect(zero, context) == []


amounts = st.sampled_from(["0", "0.00000001", "0.5", "1", "3", "250"])
prices = st.sampled_from(["0", "0.00000001", "99.9", "100", "100.3"])
Row = tuple[str, str, str, str, int, int, bool, float]
rows_strategy = st.lists(
    st.tuples(
        amounts, amounts, prices, prices, st.integers(0, 80), st.integers(0, 8), st.booleans(), st.floats(0, 100)
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(rows_strategy)
def test_any_sequence_gives_well_formed_json_signals(rows: list[Row]) -> None:
    windows = [
        window(i, buy=b, sell=s, open_=o, close=c, trades=n, whales=k, whale_buy=b, burst=burst, burst_ratio=ratio)
        for i, (b, s, o, c, n, k, burst, ratio) in enumerate(rows)
    ]
    for signal in run(windows):
        assert signal.severity in (1, 2, 3) and signal.direction in ("buy", "sell", "neutral")
        assert json.loads(json.dumps(signal.evidence)) == signal.evidence

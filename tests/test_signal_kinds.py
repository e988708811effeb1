"""A signal kind is one module: a toy kind registered here is detected, worded and explained with no other edit."""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Iterator, Mapping
from typing import Any, TypedDict

import numpy as np
import pytest

from ai.offline import OFFLINE_MARK, explain_offline
from bot.alert_text import render_alert
from bot.outbox import AlertItem
from core.events import Direction, Signal, SignalKind
from core.features import PRICE_SCALE, WindowFeatures
from engine.analysis.context import CONTEXT_SPANS, SymbolContext
from engine.analysis.window_batch import WindowBatch
from engine.event_codec import decode, encode
from engine.signals import registry
from engine.signals.amounts import direction_of
from engine.signals.batch import BatchJudge
from engine.signals.detector import SignalDetector
from engine.signals.flows import Flows
from engine.signals.kind import FactFormat, Finding, KindSpec, Wording
from engine.signals.span_sums import SpanSums
from engine.signals.thresholds import SignalThresholds
from storage.signal_store import SignalStore

T0 = 1_700_000_000_000
BUILT_IN = ("whale", "burst", "imbalance", "cvd_divergence", "absorption", "liquidation_cascade", "oi_shift",
            "funding_extreme")


# --- the toy kind: everything about it in one place, as a module of engine/signals/kinds/ would hold it ----------


class BusyEvidence(TypedDict):
    trade_count: int
    busy_trades: int


BUSY_TRADES = 100


def busy_rule(w: WindowFeatures, flows: Flows, t: SignalThresholds) -> Finding | None:
    """A window of at least BUSY_TRADES trades; severity 2 past twice that."""
    if w.trade_count < BUSY_TRADES:
        return None
    return Finding(direction_of(w.delta, 0), 2 if w.trade_count >= 2 * BUSY_TRADES else 1,
                   BusyEvidence(trade_count=w.trade_count, busy_trades=BUSY_TRADES))


def busy_pre_filter(sums: SpanSums, t: SignalThresholds, margin: float) -> np.ndarray:
    return sums.windows.trade_count >= BUSY_TRADES


def busy_facts(e: Mapping[str, Any], direction: Direction, say: FactFormat) -> dict[str, Any]:
    return {"trades": say.number(e["trade_count"]), "side": say.side("buyers" if direction == "buy" else "sellers")}


BUSY = KindSpec(
    name=SignalKind("busy"),
    order=99,
    doc="a window with many trades",
    rule=busy_rule,
    pre_filter=busy_pre_filter,
    wording={"en": Wording("Busy window", "{trades} trades, {side} ahead"),
             "pt": Wording("Janela movimentada", "{trades} negócios, {side} à frente")},
    facts=busy_facts,
    offline="a busy window",
    offline_detail=lambda e, number: f"{number(e['trade_count'])} trades in one window.",
)


@pytest.fixture(params=["pre-filtered", "every window judged"])
def busy(request: pytest.FixtureRequest) -> Iterator[KindSpec]:
    spec = BUSY if request.param == "pre-filtered" else dataclasses.replace(BUSY, pre_filter=None)
    registry.register(spec)
    yield spec
    registry.unregister(spec.name)


def window(i: int, trades: int, buy: int = 2, sell: int = 1) -> WindowFeatures:
    b, s, price = buy * PRICE_SCALE, sell * PRICE_SCALE, 100 * PRICE_SCALE
    return WindowFeatures(
        symbol="BTCUSDT", window_start=T0 + i * 5000, window_end=T0 + (i + 1) * 5000,
        open=price, high=price, low=price, close=price, volume=b + s, quote_volume=(b + s) * price,
        buy_volume=b, sell_volume=s, buy_quote=b * price, sell_quote=s * price, delta=b - s, cvd=b - s,
        trade_count=trades, whale_count=0, whale_buy_quote=0, whale_sell_quote=0,
        first_id=i * 1000, last_id=i * 1000 + trades - 1, missing_ids=0, whale_threshold=10**30,
        burst=False, burst_ratio=0.0,
    )


WINDOWS = [window(i, trades) for i, trades in enumerate([10, 150, 20, 250, 300, 5, 120])]
THRESHOLDS = SignalThresholds(cooldown_s=10)


def window_by_window() -> list[Signal]:
    detector, context, found = SignalDetector(THRESHOLDS, clock=lambda: 1.0), SymbolContext("BTCUSDT"), []
    for w in WINDOWS:
        context.add(w)
        found.extend(detector.detect(w, context))
    return found


def in_batches(size: int) -> list[Signal]:
    judge, context, found = BatchJudge(SignalDetector(THRESHOLDS, clock=lambda: 1.0)), SymbolContext("BTCUSDT"), []
    for start in range(0, len(WINDOWS), size):
        batch, history = WINDOWS[start : start + size], list(context.windows)
        context.extend(batch)
        found.extend(judge.signals(WindowBatch.from_features("BTCUSDT", history + batch), len(history)))
    return found


def test_a_registered_kind_is_detected_window_by_window_and_in_batches(busy: KindSpec) -> None:
    expected = window_by_window()
    assert [(s.kind, s.window_start - T0, s.severity, s.direction) for s in expected] == [
        ("busy", 5000, 1, "buy"), ("busy", 15000, 2, "buy"), ("busy", 30000, 1, "buy"),  # 20000: cooling down
    ]
    assert expected[0].evidence == {"trade_count": 150, "busy_trades": 100, "close": 100.0, "delta": 1.0, "cvd": 1.0}
    for size in (1, 3, len(WINDOWS)):
        assert in_batches(size) == expected


def test_a_registered_kind_is_worded_in_english_and_portuguese_and_explained_offline(busy: KindSpec) -> None:
    signal = window_by_window()[0]
    english = render_alert([AlertItem(signal, None, None)], "en")
    portuguese = render_alert([AlertItem(signal, None, None)], "pt")
    assert english.title == "BTCUSDT · Busy window · buy · severity 1/3"
    assert "150 trades, buyers ahead" in english.body
    assert portuguese.title == "BTCUSDT · Janela movimentada · compra · severidade 1/3"
    assert "150 negócios, compradores à frente" in portuguese.body
    snapshot = {"symbol": "BTCUSDT", "context": {},
                "signal": {"kind": signal.kind, "direction": signal.direction, "severity": signal.severity,
                           "evidence": signal.evidence}}
    assert explain_offline(snapshot).startswith(
        f"{OFFLINE_MARK} BTCUSDT: a busy window, buy side, severity 1. 150 trades in one window."
    )


def test_a_kind_is_registered_once(busy: KindSpec) -> None:
    assert registry.kind_names()[-1] == "busy"
    with pytest.raises(ValueError, match="twice"):
        registry.register(busy)


def test_the_built_in_kinds_are_found_in_order() -> None:
    assert registry.kind_names() == BUILT_IN


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_built_in_kind_is_worded_explained_and_documented(name: str) -> None:
    spec = registry.find(name)
    assert spec is not None
    assert {"en", "pt"} <= spec.wording.keys()
    en, pt = spec.wording["en"], spec.wording["pt"]
    assert en.title and pt.title and en.title != pt.title
    assert _fields(en.fact) == _fields(pt.fact) != set()
    assert spec.offline and spec.doc and "\n" not in spec.doc
    assert set(spec.spans) <= CONTEXT_SPANS.keys()
    assert set(spec.thresholds) <= {f.name for f in dataclasses.fields(SignalThresholds)}


def _fields(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def test_direction_travels_as_a_plain_string_and_comes_back_typed(tmp_path) -> None:
    signal = dataclasses.replace(a_whale_signal(), direction=Direction.SELL)
    payload = encode(signal)
    assert b'"direction":"sell"' in payload
    decoded = decode(payload)
    assert decoded == signal and type(decoded.direction) is Direction
    store = SignalStore(tmp_path / "flowbot.db")
    store.save_many([signal])
    stored = store.recent()[0]
    assert stored == signal and type(stored.direction) is Direction
    store.close()


def a_whale_signal() -> Signal:
    """A whale signal from the built-in kinds."""
    detector, context = SignalDetector(THRESHOLDS, clock=lambda: 1.0), SymbolContext("BTCUSDT")
    w = dataclasses.replace(WINDOWS[0], whale_count=1, whale_buy_quote=5 * 10**21)
    context.add(w)
    return next(s for s in detector.detect(w, context) if s.kind == "whale")

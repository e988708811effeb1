"""Judging a batch of windows gives exactly the signals of judging them one at a time."""

from __future__ import annotations

import pytest
from expected_flow import columns, load_csv

from engine.analysis.context import SymbolContext
from engine.analysis.window_batch import WindowBatch
from engine.analysis.windows import FlowRules, WindowBuilder
from engine.signals import batch as batch_signals
from engine.signals.batch import BatchJudge
from engine.signals.detector import SignalDetector
from engine.signals.thresholds import SignalThresholds

EAGER = SignalThresholds(
    whale_cluster=2, imbalance_ratio=0.6, imbalance_min_trades=5, divergence_min_price_pct=0.005,
    divergence_min_delta_share=0.05, absorption_min_share=0.55, absorption_max_price_pct=0.01,
    absorption_min_volume_ratio=1.2, cooldown_s=10,
)


@pytest.fixture(scope="module")
def windows(shared_data) -> list:
    once = load_csv(shared_data / "BTCUSDT-aggTrades-2026-01-01.csv")
    id_span, time_span = once[-1]["a"] - once[0]["a"] + 1, once[-1]["T"] - once[0]["T"] + 1
    rows = [dict(r, a=r["a"] + k * id_span, T=r["T"] + k * time_span) for k in range(3) for r in once]  # 36 min
    builder = WindowBuilder("BTCUSDT", FlowRules(window_ms=5000, whale_min_notional=5_000 * 10**16,
                                                 whale_percentile=98, burst_factor=1.8))
    return [*builder.add(columns(rows)), *builder.close_through(2**62)]


@pytest.mark.parametrize("margin", [batch_signals.MARGIN, 0.2])  # 0.2: many windows too close to call, judged at once
@pytest.mark.parametrize("batch_size", [1, 7, 40, 10_000])
def test_batch_judging_equals_window_by_window_judging(
    windows: list, batch_size: int, margin: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_signals, "MARGIN", margin)
    one_by_one, context = SignalDetector(EAGER, clock=lambda: 1.0), SymbolContext("BTCUSDT")
    expected = []
    for w in windows:
        context.add(w)
        expected.extend(one_by_one.detect(w, context))
    batch_detector, batch_context = SignalDetector(EAGER, clock=lambda: 1.0), SymbolContext("BTCUSDT")
    judge, got = BatchJudge(batch_detector), []
    for start in range(0, len(windows), batch_size):
        batch = windows[start : start + batch_size]
        history = list(batch_context.windows)
        batch_context.extend(batch)
        got.extend(judge.signals(WindowBatch.from_features("BTCUSDT", history + batch), len(history)))
    assert got == expected
    assert {s.kind for s in expected} == {"whale", "burst", "imbalance", "cvd_divergence", "absorption"}
    assert batch_detector.suppressed == one_by_one.suppressed

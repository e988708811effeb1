"""The analysis pipeline's config, built from Settings: only the composition root reads the whole of it."""

from __future__ import annotations

from decimal import Decimal

from core.features import QUOTE_SCALE
from core.settings import Settings
from engine.analysis.config import PipelineConfig
from engine.analysis.windows import FlowRules
from engine.signals.thresholds import SignalThresholds


def flow_rules(settings: Settings, whale_min_notional: Decimal) -> FlowRules:
    """The window rules of `settings` with a whale floor in quote currency."""
    return FlowRules(
        window_ms=int(settings.window_duration * 1000),
        whale_min_notional=int(whale_min_notional * QUOTE_SCALE),
        whale_percentile=settings.whale_percentile,
        burst_factor=settings.burst_factor,
    )


def signal_thresholds(settings: Settings) -> SignalThresholds:
    return SignalThresholds(
        whale_cluster=settings.signal_whale_cluster,
        imbalance_ratio=settings.signal_imbalance_ratio,
        imbalance_min_trades=settings.signal_imbalance_min_trades,
        divergence_min_price_pct=settings.signal_divergence_price_pct,
        divergence_min_delta_share=settings.signal_divergence_delta_share,
        absorption_min_share=settings.signal_absorption_share,
        absorption_max_price_pct=settings.signal_absorption_price_pct,
        absorption_min_volume_ratio=settings.signal_absorption_volume_ratio,
        cooldown_s=settings.signal_cooldown,
        budget_per_day=settings.alert_budget_per_day,
        liq_cascade_percentile=settings.liq_cascade_percentile,
        liq_cascade_multiple=settings.liq_cascade_multiple,
        liq_cascade_min_orders=settings.liq_cascade_min_orders,
        liq_cascade_min_move_pct=settings.liq_cascade_min_move_pct,
        liq_cascade_min_history=settings.liq_cascade_min_history,
        funding_extreme_percentile=settings.funding_extreme_percentile,
        funding_extreme_min_pct=settings.funding_extreme_min_pct,
        funding_extreme_min_history=settings.funding_extreme_min_history,
        oi_shift_percentile=settings.oi_shift_percentile,
        oi_shift_multiple=settings.oi_shift_multiple,
        oi_shift_min_pct=settings.oi_shift_min_pct,
        oi_shift_min_history=settings.oi_shift_min_history,
    )


def pipeline_config(settings: Settings) -> PipelineConfig:
    """The analysis rules of `settings`, WHALE_MIN_NOTIONAL_OVERRIDES as per-symbol rules."""
    return PipelineConfig(
        rules=flow_rules(settings, settings.whale_min_notional),
        window_grace_ms=int(settings.window_grace * 1000),
        thresholds=signal_thresholds(settings),
        rules_by_symbol={symbol: flow_rules(settings, floor) for symbol, floor in settings.whale_overrides.items()},
    )

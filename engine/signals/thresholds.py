"""The numbers the signal kinds compare against, named as their settings are."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SignalThresholds:
    """The numbers the detectors compare against; the caller builds it from settings."""

    whale_cluster: int = 3
    burst_severity_2: float = 5.0
    imbalance_ratio: float = 0.75
    imbalance_min_trades: int = 50
    divergence_min_price_pct: float = 0.1
    divergence_min_delta_share: float = 0.2
    absorption_min_share: float = 0.7
    absorption_max_price_pct: float = 0.02
    absorption_min_volume_ratio: float = 3.0
    cooldown_s: float = 60.0
    liq_cascade_percentile: float = 75.0  # the symbol's norm: this percentile of its liquidation minutes (24 h)
    liq_cascade_multiple: float = 5.0  # a cascade's minute is at least this many times the norm
    liq_cascade_min_orders: int = 5  # liquidation orders of the side in the minute
    liq_cascade_min_move_pct: float = 0.2  # price moved this much through them, in the forced direction
    liq_cascade_min_history: int = 20  # liquidation minutes seen before the norm counts
    funding_extreme_percentile: float = 99.0  # the symbol's range: this percentile and its mirror of its samples
    funding_extreme_min_pct: float = 0.05  # and at least this funding rate (percent), positive or negative
    funding_extreme_min_history: int = 360  # minutes of funding samples (of the last three days) before judging
    oi_shift_percentile: float = 95.0  # the symbol's norm: this percentile of its 15-minute OI changes (a day)
    oi_shift_multiple: float = 2.0  # a shift is at least this many times the norm
    oi_shift_min_pct: float = 1.0  # and at least this change of open interest, in percent
    oi_shift_min_history: int = 60  # minutes of samples before the norm counts
    budget_per_day: float = 0.0  # at most this many signals per symbol per day of market time (0: no budget)

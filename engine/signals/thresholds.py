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
    budget_per_day: float = 0.0  # at most this many signals per symbol per day of market time (0: no budget)

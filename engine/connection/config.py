"""What the feed is configured with, built by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from engine.connection.supervisor import SupervisorPolicy


@dataclass(frozen=True)
class FeedConfig:
    """Endpoints, symbols and timings of one feed (seconds unless named otherwise)."""

    ws_url: str
    rest_url: str
    symbols: tuple[str, ...]
    ping_interval: float
    health_report_interval: float
    supervisor: SupervisorPolicy
    gap_grace: float  # how long a gap may fill from late messages before REST is asked
    rest_max_attempts: int
    max_clock_skew: float  # how far into the future a trade's time may be

"""What the dashboard is configured with, built by the composition root from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr


@dataclass(frozen=True)
class DashboardConfig:
    symbols: tuple[str, ...]
    token: SecretStr | None  # DASHBOARD_TOKEN: None leaves the pages open
    allowed_hosts: tuple[str, ...]  # DASHBOARD_ALLOWED_HOSTS (empty: the loopback names and health_host)
    health_host: str  # where it is served
    bus_queue_size: int

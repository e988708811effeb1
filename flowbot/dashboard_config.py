"""The dashboard's configuration from the settings."""

from __future__ import annotations

from core.settings import Settings
from dashboard.config import DashboardConfig


def dashboard_config(settings: Settings) -> DashboardConfig:
    return DashboardConfig(tuple(settings.symbols), settings.dashboard_token, tuple(settings.dashboard_allowed_hosts),
                           settings.health_host, settings.bus_queue_size)

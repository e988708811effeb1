"""What the bot side needs to know, in small frozen parts the composition root builds from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr


@dataclass(frozen=True)
class TelegramConfig:
    """The Telegram bot: its token, API, pacing, who administers it and who may use it."""

    token: SecretStr
    api_base_url: str = "https://api.telegram.org"
    rate_limit: float = 30.0  # requests per second, overall
    group_per_minute: int = 20  # messages per minute to one group
    chat_interval: float = 1.0  # seconds between two messages to one chat
    admin_ids: tuple[str, ...] = ()
    allowed_chat_ids: tuple[str, ...] = ()  # empty: every chat
    webhook_url: str | None = None  # None: long polling
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443

    @property
    def concurrency(self) -> int:
        """Requests in flight at once: the rate times a ~100 ms round trip, at least 8, at most 64."""
        return min(64, max(8, int(self.rate_limit / 10)))


@dataclass(frozen=True)
class DiscordConfig:
    """The Discord bot: its token, API and gateway, admins, and a channel for every alert."""

    token: SecretStr
    api_base_url: str = "https://discord.com/api/v10"
    gateway_url: str | None = None  # None: asked from the API (or discord.py's default)
    admin_ids: tuple[str, ...] = ()
    alert_channel_id: str | None = None


@dataclass(frozen=True)
class WebhookConfig:
    """A Discord webhook that receives every alert."""

    url: SecretStr
    api_base_url: str = "https://discord.com/api/v10"


@dataclass(frozen=True)
class BotConfig:
    """The bot service: where its database lives, the symbols, alert merging, and the platforms to serve."""

    data_dir: Path
    symbols: tuple[str, ...]
    alert_merge_window: float = 30.0
    rules_per_chat: int = 50  # /alert rules a chat may hold
    rule_interval: float = 60.0  # seconds (market time) between two firings of one rule
    futures: bool = False  # the market has liquidations, open interest and funding (MARKET=usdm)
    health_check_interval: float = 30.0
    telegram: TelegramConfig | None = None
    discord: DiscordConfig | None = None
    webhook: WebhookConfig | None = None

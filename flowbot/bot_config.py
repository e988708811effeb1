"""The bot side's configuration, taken from the settings: only the parts each bot component needs."""

from __future__ import annotations

from pathlib import Path

from bot.config import BotConfig, DiscordConfig, TelegramConfig, WebhookConfig
from core.settings import Market, Settings


def bot_config(settings: Settings) -> BotConfig:
    """The bot service's config; a platform is configured when its token (or webhook URL) is set."""
    telegram = None if settings.telegram_bot_token is None else TelegramConfig(
        token=settings.telegram_bot_token, api_base_url=settings.telegram_api_base_url,
        rate_limit=settings.telegram_rate_limit, group_per_minute=settings.telegram_group_per_minute,
        chat_interval=settings.telegram_chat_interval, admin_ids=tuple(settings.telegram_admin_ids),
        allowed_chat_ids=tuple(settings.telegram_allowed_chat_ids), webhook_url=settings.telegram_webhook_url,
        webhook_listen=settings.telegram_webhook_listen, webhook_port=settings.telegram_webhook_port,
    )
    discord = None if settings.discord_bot_token is None else DiscordConfig(
        token=settings.discord_bot_token, api_base_url=settings.discord_api_base_url,
        gateway_url=settings.discord_gateway_url, admin_ids=tuple(settings.discord_admin_ids),
        alert_channel_id=settings.discord_alert_channel_id,
    )
    webhook = None if settings.discord_webhook_url is None else WebhookConfig(
        url=settings.discord_webhook_url, api_base_url=settings.discord_api_base_url,
    )
    return BotConfig(
        data_dir=Path(settings.data_dir), symbols=tuple(settings.symbols),
        alert_merge_window=settings.alert_merge_window, rules_per_chat=settings.alert_rules_per_chat,
        rule_interval=settings.alert_rule_interval, futures=settings.market is Market.USDM,
        health_check_interval=settings.health_check_interval,
        telegram=telegram, discord=discord, webhook=webhook,
    )

"""Flowbot settings: the environment first, then a `.env` in the working directory, then defaults."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Market(StrEnum):
    SPOT = "spot"
    USDM = "usdm"


class StreamKind(StrEnum):
    AGG_TRADE = "aggTrade"
    TRADE = "trade"


WINDOW_DURATIONS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)  # whole seconds that divide a minute
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ALL_SYMBOLS = "ALL"  # SYMBOLS=ALL

MARKET_ENDPOINTS: dict[Market, tuple[str, str]] = {
    Market.SPOT: ("wss://data-stream.binance.vision", "https://data-api.binance.vision"),
    Market.USDM: ("wss://fstream.binance.com", "https://fapi.binance.com"),
}


def _window_duration(value: float) -> float:
    if value not in WINDOW_DURATIONS:
        raise ValueError(f"WINDOW_DURATION must be a whole number of seconds that divides a minute: "
                         f"{', '.join(map(str, WINDOW_DURATIONS[:-1]))} or {WINDOW_DURATIONS[-1]}")
    return value


def _log_level(value: str) -> str:
    if value.strip().upper() not in LOG_LEVELS:
        raise ValueError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
    return value.strip().upper()


class Settings(BaseSettings):
    """Every setting Flowbot reads; names are contracts shared with tools outside the project."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    market: Market = Field(Market.SPOT, validation_alias="MARKET")
    binance_ws_url: str | None = Field(None, validation_alias="BINANCE_WS_URL")
    binance_rest_url: str | None = Field(None, validation_alias="BINANCE_REST_URL")
    symbols: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["BTCUSDT", "ETHUSDT"], validation_alias="SYMBOLS"
    )
    stream: StreamKind = Field(StreamKind.AGG_TRADE, validation_alias="STREAM")
    # USD-M liquidations: one <symbol>@forceOrder stream per symbol, or the market-wide !forceOrder@arr (the default
    # with SYMBOLS=ALL: one stream instead of hundreds)
    liquidation_stream: Literal["symbol", "all"] | None = Field(None, validation_alias="LIQUIDATION_STREAM")

    ws_ping_interval: float = Field(20.0, gt=0, validation_alias="WS_PING_INTERVAL")
    health_check_interval: float = Field(30.0, gt=0, validation_alias="HEALTH_CHECK_INTERVAL")
    oi_poll_interval: float = Field(30.0, gt=0, validation_alias="OI_POLL_INTERVAL")  # USD-M open interest, seconds
    ws_stall_timeout: float = Field(60.0, gt=0, validation_alias="WS_STALL_TIMEOUT")
    ws_max_reconnect_attempts: int = Field(15, ge=1, validation_alias="WS_MAX_RECONNECT_ATTEMPTS")
    ws_reconnect_base_delay: float = Field(1.0, gt=0, validation_alias="WS_RECONNECT_BASE_DELAY")
    ws_reconnect_max_delay: float = Field(60.0, gt=0, validation_alias="WS_RECONNECT_MAX_DELAY")
    ws_rotate_after: float = Field(23 * 3600.0, gt=0, validation_alias="WS_ROTATE_AFTER")
    ws_rotation_overlap: float = Field(2.0, ge=0, validation_alias="WS_ROTATION_OVERLAP")
    gap_grace: float = Field(1.0, ge=0, validation_alias="GAP_GRACE")
    rest_max_attempts: int = Field(5, ge=1, validation_alias="REST_MAX_ATTEMPTS")
    max_clock_skew: float = Field(60.0, gt=0, validation_alias="MAX_CLOCK_SKEW")

    window_duration: Annotated[float, AfterValidator(_window_duration)] = Field(5.0, validation_alias="WINDOW_DURATION")
    window_grace: float = Field(2.0, ge=0, validation_alias="WINDOW_GRACE")
    whale_min_notional: Decimal = Field(Decimal(100_000), ge=0, validation_alias="WHALE_MIN_NOTIONAL")
    whale_percentile: float = Field(99.5, ge=0, le=100, validation_alias="WHALE_PERCENTILE")
    whale_overrides: Annotated[dict[str, Decimal], NoDecode] = Field(
        default_factory=dict, validation_alias="WHALE_MIN_NOTIONAL_OVERRIDES"
    )
    burst_factor: float = Field(3.0, gt=0, validation_alias="BURST_FACTOR")
    flush_interval: float = Field(5.0, gt=0, validation_alias="FLUSH_INTERVAL")
    signal_cooldown: float = Field(60.0, ge=0, validation_alias="SIGNAL_COOLDOWN")
    alert_budget_per_day: float = Field(24.0, ge=0, validation_alias="ALERT_BUDGET_PER_DAY")
    signal_whale_cluster: int = Field(3, ge=1, validation_alias="SIGNAL_WHALE_CLUSTER")
    signal_imbalance_ratio: float = Field(0.75, gt=0.5, le=1, validation_alias="SIGNAL_IMBALANCE_RATIO")
    signal_imbalance_min_trades: int = Field(50, ge=1, validation_alias="SIGNAL_IMBALANCE_MIN_TRADES")
    signal_divergence_price_pct: float = Field(0.1, gt=0, validation_alias="SIGNAL_DIVERGENCE_PRICE_PCT")
    signal_divergence_delta_share: float = Field(0.2, gt=0, le=1, validation_alias="SIGNAL_DIVERGENCE_DELTA_SHARE")
    signal_absorption_share: float = Field(0.7, gt=0.5, le=1, validation_alias="SIGNAL_ABSORPTION_SHARE")
    signal_absorption_price_pct: float = Field(0.02, ge=0, validation_alias="SIGNAL_ABSORPTION_PRICE_PCT")
    signal_absorption_volume_ratio: float = Field(3.0, gt=0, validation_alias="SIGNAL_ABSORPTION_VOLUME_RATIO")
    liq_cascade_percentile: float = Field(75.0, ge=0, le=100, validation_alias="LIQ_CASCADE_PERCENTILE")
    liq_cascade_multiple: float = Field(5.0, gt=0, validation_alias="LIQ_CASCADE_MULTIPLE")
    liq_cascade_min_orders: int = Field(5, ge=1, validation_alias="LIQ_CASCADE_MIN_ORDERS")
    liq_cascade_min_move_pct: float = Field(0.2, ge=0, validation_alias="LIQ_CASCADE_MIN_MOVE_PCT")
    liq_cascade_min_history: int = Field(20, ge=1, validation_alias="LIQ_CASCADE_MIN_HISTORY")
    funding_extreme_percentile: float = Field(99.0, gt=50, le=100, validation_alias="FUNDING_EXTREME_PERCENTILE")
    funding_extreme_min_pct: float = Field(0.05, ge=0, validation_alias="FUNDING_EXTREME_MIN_PCT")
    funding_extreme_min_history: int = Field(360, ge=1, validation_alias="FUNDING_EXTREME_MIN_HISTORY")
    oi_shift_percentile: float = Field(95.0, ge=0, le=100, validation_alias="OI_SHIFT_PERCENTILE")
    oi_shift_multiple: float = Field(2.0, gt=0, validation_alias="OI_SHIFT_MULTIPLE")
    oi_shift_min_pct: float = Field(1.0, ge=0, validation_alias="OI_SHIFT_MIN_PCT")
    oi_shift_min_history: int = Field(60, ge=1, validation_alias="OI_SHIFT_MIN_HISTORY")
    groq_api_key: SecretStr | None = Field(None, validation_alias="GROQ_API_KEY")
    groq_base_url: str = Field("https://api.groq.com", validation_alias="GROQ_BASE_URL")
    groq_model: str = Field("llama-3.3-70b-versatile", validation_alias="GROQ_MODEL")
    dashscope_api_key: SecretStr | None = Field(None, validation_alias="DASHSCOPE_API_KEY")
    dashscope_base_url: str = Field(
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", validation_alias="DASHSCOPE_BASE_URL"
    )
    dashscope_model: str = Field("qwen-plus", validation_alias="DASHSCOPE_MODEL")
    openai_api_key: SecretStr | None = Field(None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str = Field("https://api.openai.com/v1", validation_alias="OPENAI_BASE_URL")
    openai_model: str = Field("gpt-4o-mini", validation_alias="OPENAI_MODEL")
    ai_timeout: float = Field(15.0, gt=0, validation_alias="AI_TIMEOUT")
    ai_concurrency: int = Field(4, ge=1, validation_alias="AI_CONCURRENCY")
    ask_rate_limit: int = Field(5, ge=1, validation_alias="ASK_RATE_LIMIT")
    telegram_bot_token: SecretStr | None = Field(None, validation_alias="TELEGRAM_BOT_TOKEN")
    telegram_api_base_url: str = Field("https://api.telegram.org", validation_alias="TELEGRAM_API_BASE_URL")
    telegram_webhook_url: str | None = Field(None, validation_alias="TELEGRAM_WEBHOOK_URL")
    telegram_webhook_listen: str = Field("127.0.0.1", validation_alias="TELEGRAM_WEBHOOK_LISTEN")
    telegram_webhook_port: int = Field(8443, ge=1, le=65535, validation_alias="TELEGRAM_WEBHOOK_PORT")
    telegram_admin_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="TELEGRAM_ADMIN_IDS"
    )
    telegram_allowed_chat_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="TELEGRAM_ALLOWED_CHAT_IDS"
    )
    telegram_rate_limit: float = Field(30.0, gt=0, validation_alias="TELEGRAM_RATE_LIMIT")
    telegram_chat_interval: float = Field(1.0, ge=0, validation_alias="TELEGRAM_CHAT_INTERVAL")
    telegram_group_per_minute: int = Field(20, ge=1, validation_alias="TELEGRAM_GROUP_PER_MINUTE")
    discord_bot_token: SecretStr | None = Field(None, validation_alias="DISCORD_BOT_TOKEN")
    discord_api_base_url: str = Field("https://discord.com/api/v10", validation_alias="DISCORD_API_BASE_URL")
    discord_gateway_url: str | None = Field(None, validation_alias="DISCORD_GATEWAY_URL")
    discord_alert_channel_id: str | None = Field(None, validation_alias="DISCORD_ALERT_CHANNEL_ID")
    discord_webhook_url: SecretStr | None = Field(None, validation_alias="DISCORD_WEBHOOK_URL")
    discord_admin_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="DISCORD_ADMIN_IDS"
    )
    alert_merge_window: float = Field(30.0, ge=0, validation_alias="ALERT_MERGE_WINDOW")
    alert_rules_per_chat: int = Field(50, ge=0, validation_alias="ALERT_RULES_PER_CHAT")
    alert_rule_interval: float = Field(60.0, ge=0, validation_alias="ALERT_RULE_INTERVAL")
    bus_queue_size: int = Field(10_000, ge=1, validation_alias="BUS_QUEUE_SIZE")
    bus_url: str = Field("memory://", validation_alias="BUS_URL")
    shard_count: int = Field(1, ge=1, validation_alias="SHARD_COUNT")
    shard_index: int = Field(0, ge=0, validation_alias="SHARD_INDEX")
    data_dir: str = Field("./data", validation_alias="DATA_DIR")
    log_level: Annotated[str, AfterValidator(_log_level)] = Field("INFO", validation_alias="LOG_LEVEL")
    log_format: Literal["text", "json"] = Field("text", validation_alias="LOG_FORMAT")
    health_host: str = Field("127.0.0.1", validation_alias="HEALTH_HOST")
    health_port: int = Field(8080, ge=0, le=65535, validation_alias="HEALTH_PORT")

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            symbols = [str(s).strip().upper() for s in value if str(s).strip()]
            if not symbols:
                raise ValueError("SYMBOLS must name at least one symbol")
            if any(not s.isalnum() for s in symbols):
                raise ValueError("SYMBOLS entries must be letters and digits, e.g. BTCUSDT")
            if ALL_SYMBOLS in symbols and len(symbols) > 1:
                raise ValueError("SYMBOLS=ALL stands alone (every trading symbol of MARKET)")
            return list(dict.fromkeys(symbols))
        return value

    @field_validator("telegram_admin_ids", "telegram_allowed_chat_ids", "discord_admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        """TELEGRAM_ADMIN_IDS=123,456: numeric ids, comma separated."""
        if isinstance(value, str | int):
            value = [item.strip() for item in str(value).split(",") if item.strip()]
        if isinstance(value, list | tuple):
            ids = [str(item).strip() for item in value]
            if any(not item.lstrip("-").isdigit() for item in ids):
                raise ValueError("ids must be numbers separated by commas, e.g. 12345,67890")
            return ids
        return value

    @field_validator(
        "groq_api_key", "dashscope_api_key", "openai_api_key", "telegram_bot_token", "discord_bot_token",
        "discord_webhook_url", mode="before",
    )
    @classmethod
    def _empty_key_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("whale_overrides", mode="before")
    @classmethod
    def _parse_overrides(cls, value: object) -> object:
        """WHALE_MIN_NOTIONAL_OVERRIDES=BTCUSDT=500000,DOGEUSDT=20000"""
        if isinstance(value, str):
            pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
            if any(len(pair) != 2 for pair in pairs):
                raise ValueError("WHALE_MIN_NOTIONAL_OVERRIDES must look like BTCUSDT=500000,ETHUSDT=200000")
            return {symbol.strip().upper(): amount.strip() for symbol, amount in pairs}
        return value

    @model_validator(mode="after")
    def _shard_in_range(self) -> Settings:
        if self.shard_index >= self.shard_count:
            raise ValueError(f"SHARD_INDEX must be below SHARD_COUNT ({self.shard_count}): 0 to {self.shard_count - 1}")
        return self

    @property
    def all_symbols(self) -> bool:
        """SYMBOLS=ALL: every trading symbol of MARKET, listed by the exchange when a process starts."""
        return self.symbols == [ALL_SYMBOLS]

    @property
    def shard_symbols(self) -> list[str]:
        """This engine shard's symbols: those of SYMBOLS, sorted, whose position modulo SHARD_COUNT is SHARD_INDEX."""
        return [s for i, s in enumerate(sorted(self.symbols)) if i % self.shard_count == self.shard_index]

    def whale_min_notional_for(self, symbol: str) -> Decimal:
        return self.whale_overrides.get(symbol, self.whale_min_notional)

    @cached_property
    def ws_url(self) -> str:
        return (self.binance_ws_url or MARKET_ENDPOINTS[self.market][0]).rstrip("/")

    @cached_property
    def rest_url(self) -> str:
        return (self.binance_rest_url or MARKET_ENDPOINTS[self.market][1]).rstrip("/")

    dashboard_token: SecretStr | None = Field(None, validation_alias="DASHBOARD_TOKEN")
    dashboard_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="DASHBOARD_ALLOWED_HOSTS"
    )

    @field_validator("dashboard_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        """DASHBOARD_ALLOWED_HOSTS=flowbot.example.com,10.0.0.5 (empty: the loopback names and HEALTH_HOST)."""
        return [name.strip() for name in value.split(",") if name.strip()] if isinstance(value, str) else value

    @field_validator("dashboard_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        """DASHBOARD_TOKEN= (empty) leaves the dashboard open, like an unset one."""
        return None if isinstance(value, str) and not value.strip() else value


def settings_problems(error: ValidationError) -> list[str]:
    """One line per invalid setting, `NAME: what is wrong`, never the values given (they may hold secrets)."""
    lines = []
    for problem in error.errors(include_url=False, include_input=False, include_context=False):
        name = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(message if message.startswith(name) else f"{name}: {message}")  # "" starts every message
    return lines

"""Flowbot settings: the environment first, then a `.env` in the working directory, then defaults."""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Market(StrEnum):
    SPOT = "spot"
    USDM = "usdm"


class StreamKind(StrEnum):
    AGG_TRADE = "aggTrade"
    TRADE = "trade"


MARKET_ENDPOINTS: dict[Market, tuple[str, str]] = {
    Market.SPOT: ("wss://data-stream.binance.vision", "https://data-api.binance.vision"),
    Market.USDM: ("wss://fstream.binance.com", "https://fapi.binance.com"),
}


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

    ws_ping_interval: float = Field(20.0, gt=0, validation_alias="WS_PING_INTERVAL")
    health_check_interval: float = Field(30.0, gt=0, validation_alias="HEALTH_CHECK_INTERVAL")
    ws_stall_timeout: float = Field(60.0, gt=0, validation_alias="WS_STALL_TIMEOUT")
    ws_max_reconnect_attempts: int = Field(15, ge=1, validation_alias="WS_MAX_RECONNECT_ATTEMPTS")
    ws_reconnect_base_delay: float = Field(1.0, gt=0, validation_alias="WS_RECONNECT_BASE_DELAY")
    ws_reconnect_max_delay: float = Field(60.0, gt=0, validation_alias="WS_RECONNECT_MAX_DELAY")
    ws_rotate_after: float = Field(23 * 3600.0, gt=0, validation_alias="WS_ROTATE_AFTER")
    ws_rotation_overlap: float = Field(2.0, ge=0, validation_alias="WS_ROTATION_OVERLAP")
    gap_grace: float = Field(1.0, ge=0, validation_alias="GAP_GRACE")
    rest_max_attempts: int = Field(5, ge=1, validation_alias="REST_MAX_ATTEMPTS")
    max_clock_skew: float = Field(60.0, gt=0, validation_alias="MAX_CLOCK_SKEW")

    window_duration: float = Field(5.0, gt=0, validation_alias="WINDOW_DURATION")
    bus_queue_size: int = Field(10_000, ge=1, validation_alias="BUS_QUEUE_SIZE")
    data_dir: str = Field("./data", validation_alias="DATA_DIR")
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")

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
            return list(dict.fromkeys(symbols))
        return value

    @cached_property
    def ws_url(self) -> str:
        return (self.binance_ws_url or MARKET_ENDPOINTS[self.market][0]).rstrip("/")

    @cached_property
    def rest_url(self) -> str:
        return (self.binance_rest_url or MARKET_ENDPOINTS[self.market][1]).rstrip("/")

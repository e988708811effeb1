"""Binance's own rule for a sane trade: none is older than the exchange."""

from __future__ import annotations

from typing import Any

from engine.connection.validator import TradeValidator

BINANCE_OPENED_MS = 1_498_867_200_000  # 2017-07-01T00:00:00Z: no Binance trade is older
BEFORE_BINANCE = "timestamp_before_binance"


def binance_validator(**options: Any) -> TradeValidator:
    """A TradeValidator with Binance's opening date; `options` as TradeValidator takes them."""
    return TradeValidator(opened_ms=BINANCE_OPENED_MS, too_early=BEFORE_BINANCE, **options)

"""The symbols Binance trades now, from exchangeInfo (spot /api/v3/exchangeInfo, USD-M /fapi/v1/exchangeInfo)."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import orjson

from core.settings import Market

log = logging.getLogger(__name__)

EXCHANGE_INFO_PATH = {Market.SPOT: "/api/v3/exchangeInfo", Market.USDM: "/fapi/v1/exchangeInfo"}
TRADING = "TRADING"  # the other states (BREAK, HALT, PENDING_TRADING, SETTLING, ...) print no trades


class ExchangeInfoError(Exception):
    """exchangeInfo could not be read (network, HTTP status or shape); the message says which."""


def trading_symbols(info: Any) -> list[str]:
    """The TRADING symbols of an exchangeInfo body, sorted; names that are not ASCII letters and digits (Binance
    lists a few) are left out, as SYMBOLS would refuse them, with a warning."""
    entries = info.get("symbols") if isinstance(info, dict) else None
    if not isinstance(entries, list):
        raise ExchangeInfoError("exchangeInfo has no symbols list")
    trading = {
        entry["symbol"] for entry in entries
        if isinstance(entry, dict) and entry.get("status") == TRADING and isinstance(entry.get("symbol"), str)
    }
    usable = {symbol for symbol in trading if symbol.isascii() and symbol.isalnum()}
    if trading - usable:
        log.warning("exchangeInfo: %d trading symbols with names Flowbot cannot store left out: %s",
                    len(trading - usable), ", ".join(sorted(trading - usable)[:10]))
    return sorted(usable)


async def fetch_trading_symbols(
    session: aiohttp.ClientSession, rest_url: str, market: Market, *, timeout: float = 10.0
) -> list[str]:
    """GET exchangeInfo of the market; its TRADING symbols. Raises ExchangeInfoError."""
    url = rest_url.rstrip("/") + EXCHANGE_INFO_PATH[market]
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            body = await response.read()
            if response.status != 200:
                raise ExchangeInfoError(f"HTTP {response.status}: {body[:200].decode(errors='replace')}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ExchangeInfoError(f"{type(exc).__name__}: {exc}") from exc
    try:
        return trading_symbols(orjson.loads(body))
    except orjson.JSONDecodeError as exc:
        raise ExchangeInfoError("exchangeInfo is not JSON") from exc

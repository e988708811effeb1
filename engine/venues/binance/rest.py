"""Binance REST client for aggTrades, used to backfill gaps; honours Retry-After on 429 and 418."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from core.settings import Market

log = logging.getLogger(__name__)

AGG_TRADES_PATH = {Market.SPOT: "/api/v3/aggTrades", Market.USDM: "/fapi/v1/aggTrades"}
MAX_PAGE = 1000
LONGEST_RETRY_AFTER = 120.0  # a longer ban (418) is not waited out inside one backfill


class RestError(Exception):
    """A REST request that did not give data after the allowed attempts."""


class BinanceRest:
    """GET aggTrades with bounded retries; remembers a ban so that no request is sent before it ends."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        market: Market,
        *,
        max_attempts: int = 5,
        retry_delay: float = 0.5,
        timeout: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + AGG_TRADES_PATH[market]
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.sleep = sleep
        self.requests = 0
        self.rate_limited = 0
        self._banned_until = 0.0

    async def agg_trades(
        self,
        symbol: str,
        *,
        from_id: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int = MAX_PAGE,
    ) -> list[dict[str, Any]]:
        params = {"symbol": symbol, "limit": str(limit)}
        if from_id is not None:
            params["fromId"] = str(from_id)
        if start_time is not None:
            params["startTime"] = str(start_time)
        if end_time is not None:
            params["endTime"] = str(end_time)
        rows: list[dict[str, Any]] = await self.get(self.url, params, list)
        return rows

    async def get(self, url: str, params: dict[str, str], shape: type) -> Any:
        """GET a JSON body of this shape (list or dict), retrying errors, 5xx and 429/418 after Retry-After."""
        symbol = params.get("symbol", "")
        problem = "no attempt made"
        delay = 0.0
        for attempt in range(self.max_attempts):
            if time.monotonic() < self._banned_until:
                raise RestError(f"REST banned for {self._banned_until - time.monotonic():.0f}s more (418/429)")
            if delay:
                await self.sleep(delay)
            delay = random.uniform(0.5, 1.0) * self.retry_delay * 2**attempt
            self.requests += 1
            try:
                async with self.session.get(url, params=params, timeout=self.timeout) as response:
                    body = await response.read()
                    status = response.status
                    retry_after = response.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if status in (418, 429):
                self.rate_limited += 1
                delay = _retry_after(retry_after)
                problem = f"HTTP {status}, Retry-After {delay:g}s"
                log.warning("Binance REST answered %s for %s: waiting %.1fs", status, symbol, delay)
                if delay > LONGEST_RETRY_AFTER:
                    self._banned_until = time.monotonic() + delay
                    raise RestError(problem)
                continue
            if status >= 500:
                problem = f"HTTP {status}"
                continue
            if status != 200:
                raise RestError(f"HTTP {status}: {body[:200].decode(errors='replace')}")
            try:
                rows = orjson.loads(body)
            except orjson.JSONDecodeError:
                problem = "malformed JSON body"
                continue
            if not isinstance(rows, shape):
                problem = f"body is not a JSON {'array' if shape is list else 'object'}"
                continue
            return rows
        raise RestError(f"gave up after {self.max_attempts} attempts: {problem}")


def _retry_after(header: str | None) -> float:
    try:
        return max(0.0, float(header)) if header is not None else 1.0
    except ValueError:
        return 1.0

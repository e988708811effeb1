"""The REST client used for backfill, against the fake Binance: Retry-After honoured, bans respected."""

from __future__ import annotations

import aiohttp
import pytest

from core.settings import Market
from engine.venues.binance.rest import BinanceRest, RestError
from fakes.binance import FakeBinance
from fakes.recordings import load_ws_recording


@pytest.fixture
async def fake(shared_data):
    server = FakeBinance(load_ws_recording(shared_data / "binance-spot-aggtrade-ws.jsonl"))
    await server.start()
    server.play()
    await server.wait_played()
    yield server
    await server.close()


async def test_429_waits_exactly_the_retry_after_then_gets_the_trades(fake: FakeBinance) -> None:
    waits: list[float] = []

    async def record_sleep(seconds: float) -> None:
        waits.append(seconds)

    fake.rest_fail(2, status=429, retry_after=3)
    history = fake.aggtrade_history("BTCUSDT")
    async with aiohttp.ClientSession() as session:
        rest = BinanceRest(session, fake.rest_url, Market.SPOT, sleep=record_sleep)
        rows = await rest.agg_trades("BTCUSDT", from_id=history[10]["a"], limit=5)
    assert waits == [3.0, 3.0]
    assert [r["a"] for r in rows] == [h["a"] for h in history[10:15]]
    assert rest.rate_limited == 2 and len(fake.rest_requests) == 3


async def test_a_long_418_ban_fails_at_once_and_no_request_is_sent_until_it_ends(fake: FakeBinance) -> None:
    fake.rest_fail(1, status=418, retry_after=600)
    async with aiohttp.ClientSession() as session:
        rest = BinanceRest(session, fake.rest_url, Market.SPOT)
        with pytest.raises(RestError, match="418"):
            await rest.agg_trades("BTCUSDT", from_id=1)
        with pytest.raises(RestError, match="banned"):
            await rest.agg_trades("BTCUSDT", from_id=1)
    assert len(fake.rest_requests) == 1


async def test_server_errors_are_retried_a_bounded_number_of_times(fake: FakeBinance) -> None:
    fake.rest_refuse = True

    async def no_wait(_: float) -> None:
        return None

    async with aiohttp.ClientSession() as session:
        rest = BinanceRest(session, fake.rest_url, Market.SPOT, max_attempts=4, sleep=no_wait)
        with pytest.raises(RestError, match="gave up after 4 attempts: HTTP 503"):
            await rest.agg_trades("BTCUSDT", from_id=1)
    assert len(fake.rest_requests) == 4

"""SYMBOLS=ALL: every trading symbol of the market from exchangeInfo, over as many connections as Binance allows,
split by shards, and the list the bots follow; against the fake Binance over real sockets."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ai.ask import Asker
from ai.providers import ProviderChain
from bot.database import open_database
from bot.discord.slash import complete
from bot.handlers.commands import Commands
from bot.models import Caller, Destination
from bot.outbox import Outbox
from bot.subscriptions import Subscriptions
from core.settings import Market, Settings
from engine.bus import InMemoryBus
from engine.venues.binance.venue import BinanceVenue
from fakes.binance import FakeBinance
from fakes.recordings import load_ws_recording, synthetic_symbols
from flowbot.bot_config import bot_config
from flowbot.feed_config import make_feed, resolve_symbols
from storage.feature_store import FeatureStore

USDM_RECORDING = "binance-usdm-aggtrade-ws.jsonl"
SPOT_RECORDING = "binance-spot-aggtrade-ws.jsonl"


def tape(shared_data: Path, recording: str, symbols: int) -> list[dict[str, Any]]:
    """`symbols` synthetic markets over a real recording (CTKUSDT's real id gap left out)."""
    messages = [m for m in load_ws_recording(shared_data / recording) if m["data"]["s"] != "CTKUSDT"]
    return synthetic_symbols(messages, symbols)


def listing(messages: list[dict[str, Any]]) -> dict[str, str]:
    """The tape's symbols TRADING, plus symbols exchangeInfo lists that must not be followed."""
    trading = dict.fromkeys(sorted({m["data"]["s"] for m in messages}), "TRADING")
    return trading | {"OLDCOINUSDT": "BREAK", "NEWCOINUSDT": "PENDING_TRADING", "币安人生USDT": "TRADING"}


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until `condition()` holds; fails the test after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def settings_for(fake: FakeBinance, market: str, **more: str) -> Settings:
    return Settings(_env_file=None, MARKET=market, SYMBOLS="ALL", BINANCE_WS_URL=fake.ws_url,
                    BINANCE_REST_URL=fake.rest_url, WS_RECONNECT_BASE_DELAY="0.05", **more)


async def test_exchange_info_gives_the_trading_symbols_only(shared_data: Path) -> None:
    messages = tape(shared_data, USDM_RECORDING, 30)
    listed = listing(messages)
    expected = sorted(s for s, status in listed.items() if status == "TRADING" and s.isascii())
    async with FakeBinance(messages, market="usdm", listed=listed) as fake:
        async with aiohttp.ClientSession() as session:
            assert await BinanceVenue(Market.USDM, settings_for(fake, "usdm").stream).trading_symbols(
                session, fake.rest_url) == expected
        resolved = await resolve_symbols(settings_for(fake, "usdm"))
    assert resolved.symbols == expected and len(expected) == 30
    assert bot_config(resolved).symbols == tuple(expected)  # the list /subscribe resolves and Discord completes
    streams = make_feed(resolved, InMemoryBus()).venue.stream_names(resolved.symbols)  # every symbol: one stream
    assert streams.count("!forceOrder@arr") == 1 and not any(s.endswith("@forceOrder") for s in streams)
    assert len(streams) == 2 * len(expected) + 1  # aggTrade and markPrice@1s per symbol


async def test_resolving_retries_until_exchange_info_answers(shared_data: Path) -> None:
    messages = tape(shared_data, SPOT_RECORDING, 5)
    async with FakeBinance(messages, listed={}) as fake:  # lists nothing yet
        resolving = asyncio.create_task(resolve_symbols(settings_for(fake, "spot")))
        await until(lambda: fake.exchange_info_requests >= 2)
        assert not resolving.done()
        fake.listed = listing(messages)
        resolved = await asyncio.wait_for(resolving, 10)
    assert resolved.symbols == sorted({m["data"]["s"] for m in messages})


@pytest.mark.parametrize(("market", "recording", "symbols", "per_connection"),
                         [("usdm", USDM_RECORDING, 450, 200), ("spot", SPOT_RECORDING, 1100, 1024)])
async def test_every_symbol_streams_over_as_many_connections_as_the_market_allows(
    shared_data: Path, market: str, recording: str, symbols: int, per_connection: int
) -> None:
    messages = tape(shared_data, recording, symbols)
    expected_trades = Counter(m["data"]["s"] for m in messages)
    async with FakeBinance(messages, market=market, listed=listing(messages), batch=500) as fake:
        settings = await resolve_symbols(settings_for(fake, market))
        feed = make_feed(settings, InMemoryBus())
        running = asyncio.create_task(feed.run())
        try:
            streams = len(feed.venue.stream_names(settings.symbols))  # USD-M: trades, liquidations, mark price
            connections = -(-streams // per_connection)
            await until(lambda: sum(fake.streams_per_connection()) >= streams)  # subscribed, paced
            assert fake.open_connections() == connections == len(feed.health.connections)
            rest = [streams % per_connection] if streams % per_connection else []
            assert fake.streams_per_connection() == sorted([per_connection] * (streams // per_connection) + rest)
            fake.play()
            await fake.wait_played()
            await until(lambda: sum(h.trades for h in feed.health.symbols.values()) >= len(messages))
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    assert fake.control_rate_violations == 0 and fake.connections_accepted == connections
    assert {s: h.trades for s, h in feed.health.symbols.items()} == dict(expected_trades)


async def test_shards_split_the_resolved_list(shared_data: Path) -> None:
    messages = tape(shared_data, USDM_RECORDING, 40)
    everything = sorted({m["data"]["s"] for m in messages})
    async with FakeBinance(messages, market="usdm", listed=listing(messages)) as fake:
        shards = [(await resolve_symbols(settings_for(fake, "usdm", SHARD_COUNT="3", SHARD_INDEX=str(i))))
                  .shard_symbols for i in range(3)]
    assert shards == [everything[0::3], everything[1::3], everything[2::3]]


async def test_the_bots_follow_and_describe_the_resolved_list(shared_data: Path, tmp_path: Path) -> None:
    messages = tape(shared_data, USDM_RECORDING, 400)
    async with FakeBinance(messages, market="usdm", listed=listing(messages)) as fake:
        settings = await resolve_symbols(settings_for(fake, "usdm", DATA_DIR=str(tmp_path)))
    followed = list(bot_config(settings).symbols)
    db = open_database(tmp_path / "flowbot.db")
    store = FeatureStore(tmp_path)
    commands = Commands(subscriptions=Subscriptions(db), outbox=Outbox(db, 30), store=store, symbols=followed,
                        asker=Asker(ProviderChain([], timeout=1).answer, store, symbols=followed))
    caller = Caller(Destination("telegram", "1001"), user_id="1001")
    assert (await commands.run(caller, "subscribe", ["X017KSMUSDT"])).title == "Subscribed to X017KSMUSDT (all kinds)."
    assert (await commands.run(caller, "subscribe", ["OLDCOINUSDT"])).title == "I don't follow 'OLDCOINUSDT'."
    help_text = (await commands.run(caller, "help", [])).body
    assert len(help_text) < 4096 and "(400)" in help_text  # within one Telegram message
    assert [c.name for c in complete("x010k", followed)] == ["X010KEEPUSDT", "X010KSMUSDT"]  # Discord autocomplete

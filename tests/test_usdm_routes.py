"""USD-M's routed WebSocket paths and per-market limits: the fake serves them as Binance does, and Flowbot uses them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType

from core.settings import Market
from engine.venues.binance import streams
from fakes.binance import FakeBinance
from fakes.recordings import load_ws_recording

BOOK = "binance-usdm-btcusdt-book-trade-ws-2024-08-08.jsonl.gz"
LIQUIDATIONS = "binance-usdm-forceorder-2024-08-17.jsonl"
END = (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)


@pytest.fixture(scope="module")
def book_tape(shared_data: Path) -> list[dict[str, Any]]:
    """The first 3,000 messages of the USD-M BTCUSDT capture: @trade, @bookTicker and @depth@0ms mixed."""
    import gzip

    with gzip.open(shared_data / BOOK, "rb") as f:
        messages = [orjson.loads(line) for _, line in zip(range(3000), f, strict=False)]
    return [message for message in messages if "stream" in message]  # the capture starts with a subscribe reply


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def received(ws: aiohttp.ClientWebSocketResponse, fake: FakeBinance) -> list[str]:
    """Every data frame's stream name once the whole tape has played (and the frames after it have arrived)."""
    fake.play()
    await fake.wait_played(10)
    names = []
    while True:
        try:
            frame = await ws.receive(timeout=0.3)
        except TimeoutError:
            return names
        if frame.type in END:
            return names
        names.append(orjson.loads(frame.data)["stream"])


def count(tape: list[dict[str, Any]], stream: str) -> int:
    return sum(message["stream"] == stream for message in tape)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/market/stream", {"btcusdt@trade"}),
        ("/public/stream", {"btcusdt@bookTicker", "btcusdt@depth@0ms"}),
        ("/stream", {"btcusdt@bookTicker", "btcusdt@depth@0ms"}),  # unrouted: public streams only, no market data
    ],
)
async def test_usdm_routes_serve_only_their_streams(
    book_tape: list[dict[str, Any]], session: aiohttp.ClientSession, path: str, expected: set[str]
) -> None:
    wanted = "btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@0ms"
    async with FakeBinance(book_tape, market="usdm") as fake:
        ws = await session.ws_connect(f"{fake.ws_url}{path}?streams={wanted}")
        names = await received(ws, fake)
    assert set(names) == expected
    assert len(names) == sum(count(book_tape, stream) for stream in expected)


async def test_unrouted_usdm_connection_gets_no_liquidations(shared_data: Path, session: aiohttp.ClientSession) -> None:
    tape = load_ws_recording(shared_data / LIQUIDATIONS)
    async with FakeBinance(tape, market="usdm") as fake:
        bare = await session.ws_connect(f"{fake.ws_url}/stream?streams=!forceOrder@arr")
        routed = await session.ws_connect(f"{fake.ws_url}/market/stream?streams=!forceOrder@arr")
        await bare.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 1})
        assert orjson.loads((await bare.receive()).data) == {"result": ["!forceOrder@arr"], "id": 1}
        got_routed = await received(routed, fake)
        got_bare = await received(bare, fake)
    assert len(got_routed) == len(tape) == 841 and got_bare == []


async def test_spot_has_no_routes(book_tape: list[dict[str, Any]], session: aiohttp.ClientSession) -> None:
    async with FakeBinance(book_tape) as fake:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(f"{fake.ws_url}/market/stream?streams=btcusdt@trade")


async def test_usdm_allows_200_streams_and_10_messages_a_second(
    book_tape: list[dict[str, Any]], session: aiohttp.ClientSession
) -> None:
    names = [f"s{n}usdt@aggTrade" for n in range(201)]
    async with FakeBinance(book_tape, market="usdm") as fake:
        ws = await session.ws_connect(f"{fake.ws_url}/market/stream?streams=" + "/".join(names[:200]))
        for ident in range(10):
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": ident})
        replies = [orjson.loads((await ws.receive()).data) for _ in range(10)]
        assert [len(reply["result"]) for reply in replies] == [200] * 10
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 10})  # the 11th within a second
        assert (await ws.receive()).type is WSMsgType.CLOSE and ws.close_code == 1008

        ws = await session.ws_connect(f"{fake.ws_url}/market/stream?streams=" + "/".join(names))
        assert orjson.loads((await ws.receive()).data) == {"error": {"code": 2, "msg": "too many streams"}}
        assert (await ws.receive()).type is WSMsgType.CLOSE
    async with FakeBinance(book_tape) as spot:
        ws = await session.ws_connect(f"{spot.ws_url}/stream?streams=" + "/".join(names))  # spot allows 1024
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 1})
        assert len(orjson.loads((await ws.receive()).data)["result"]) == 201


def test_flowbot_routes_every_usdm_stream_and_keeps_the_base() -> None:
    base = "wss://fstream.binance.com"
    url = streams.connection_url(Market.USDM, base, ["btcusdt@aggTrade", "btcusdt@forceOrder", "btcusdt@markPrice@1s"])
    assert url == f"{base}/market/stream?streams=btcusdt@aggTrade/btcusdt@forceOrder/btcusdt@markPrice@1s"
    assert streams.connection_url(Market.USDM, f"{base}/market", ["!forceOrder@arr"]) == (
        f"{base}/market/stream?streams=!forceOrder@arr"
    )
    assert streams.connection_url(Market.USDM, base, ["btcusdt@bookTicker"]) == (
        f"{base}/public/stream?streams=btcusdt@bookTicker"
    )
    with pytest.raises(ValueError, match="one route"):
        streams.connection_url(Market.USDM, base, ["btcusdt@aggTrade", "btcusdt@depth@100ms"])
    spot = "wss://data-stream.binance.vision"
    assert streams.connection_url(Market.SPOT, spot, ["btcusdt@aggTrade"]) == f"{spot}/stream?streams=btcusdt@aggTrade"
    assert streams.LIMITS[Market.USDM].streams_per_connection == 200
    assert streams.LIMITS[Market.USDM].control_messages_per_second < 10
    assert streams.LIMITS[Market.SPOT].control_messages_per_second < 5

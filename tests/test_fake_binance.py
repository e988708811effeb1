"""Tests of the fake Binance server itself, driven by a plain aiohttp client over real sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType

from fakes.binance import ConnectionFault, FakeBinance
from fakes.recordings import load_rest_aggtrades, load_ws_recording, loop_recording

SPOT = "binance-spot-aggtrade-ws.jsonl"
USDM = "binance-usdm-aggtrade-ws.jsonl"
TRADES = "binance-spot-ethusdt-trade-ws.jsonl"
BTC = "btcusdt@aggTrade"
END = (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)


@pytest.fixture(scope="module")
def spot_lines(shared_data: Path) -> list[str]:
    """The raw text lines of the spot aggTrade recording."""
    return (shared_data / SPOT).read_text().splitlines()


@pytest.fixture(scope="module")
def spot(shared_data: Path) -> list[dict[str, Any]]:
    """The parsed spot aggTrade recording."""
    return load_ws_recording(shared_data / SPOT)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp client session."""
    async with aiohttp.ClientSession() as client:
        yield client


def lines_of(lines: list[str], tape: list[dict[str, Any]], *streams: str) -> list[str]:
    """The recorded texts of the tape messages on these streams."""
    return [line for line, message in zip(lines, tape, strict=True) if message["stream"] in streams]


def rows_of(tape: list[dict[str, Any]], symbol: str) -> list[dict[str, Any]]:
    """The tape's aggTrades of a symbol as REST rows."""
    keys = ("a", "p", "q", "f", "l", "T", "m", "M")
    return [{k: m["data"][k] for k in keys} for m in tape if m["data"]["s"] == symbol]


async def collect(ws: aiohttp.ClientWebSocketResponse, count: int | None = None, within: float = 5.0) -> list[Any]:
    """Frames received until the socket ends, `count` frames arrived, or `within` seconds passed."""
    frames: list[Any] = []
    try:
        async with asyncio.timeout(within):
            while count is None or len(frames) < count:
                frames.append(await ws.receive())
                if frames[-1].type in END:
                    break
    except TimeoutError:
        pass
    return frames


async def play_and_collect(fb: FakeBinance, ws: aiohttp.ClientWebSocketResponse, **kwargs: Any) -> list[Any]:
    """Play the whole tape while reading the socket; the frames read."""
    reader = asyncio.create_task(collect(ws, **kwargs))
    fb.play()
    await fb.wait_played(10)
    return await reader


def texts(frames: list[Any]) -> list[str]:
    """The text frames' payloads."""
    return [f.data for f in frames if f.type is WSMsgType.TEXT]


async def test_combined_stream_delivers_recorded_text_of_subscribed_streams_only(
    spot: list[dict[str, Any]], spot_lines: list[str], session: aiohttp.ClientSession
) -> None:
    expected = lines_of(spot_lines, spot, BTC, "ethusdt@aggTrade")
    async with FakeBinance(spot) as fb:
        ws = await session.ws_connect(f"{fb.ws_url}/stream?streams={BTC}/ETHUSDT@aggTrade")
        frames = await play_and_collect(fb, ws, count=len(expected))
        assert texts(frames) == expected
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.05)
        assert fb.played == len(spot) and fb.connections_accepted == 1


async def test_subscribe_unsubscribe_list_and_invalid_json(
    spot: list[dict[str, Any]], spot_lines: list[str], session: aiohttp.ClientSession
) -> None:
    async with FakeBinance(spot) as fb:
        ws = await session.ws_connect(f"{fb.ws_url}/stream")
        await ws.send_str('{"method":"SUBSCRIBE","params":["dotusdt@aggTrade","zilusdt@aggTrade"],"id":1}')
        assert orjson.loads((await ws.receive()).data) == {"result": None, "id": 1}
        await ws.send_json({"method": "UNSUBSCRIBE", "params": ["zilusdt@aggTrade"], "id": 2})
        assert orjson.loads((await ws.receive()).data) == {"result": None, "id": 2}
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 3})
        assert orjson.loads((await ws.receive()).data) == {"result": ["dotusdt@aggTrade"], "id": 3}
        await ws.send_str("{nope")
        assert orjson.loads((await ws.receive()).data) == {"error": {"code": 3, "msg": "invalid JSON"}}
        expected = lines_of(spot_lines, spot, "dotusdt@aggTrade")
        assert texts(await play_and_collect(fb, ws, count=len(expected))) == expected
        methods = [(n, m["method"]) for _, n, m in fb.control_messages]
        assert methods == [(1, "SUBSCRIBE"), (1, "UNSUBSCRIBE"), (1, "LIST_SUBSCRIPTIONS")]


async def test_too_many_control_messages_close_the_connection(
    spot: list[dict[str, Any]], session: aiohttp.ClientSession
) -> None:
    async with FakeBinance(spot) as fb:
        ws = await session.ws_connect(f"{fb.ws_url}/stream")
        for ident in range(6):
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": ident})
        frames = await collect(ws)
        assert [orjson.loads(f.data)["id"] for f in frames[:-1]] == [0, 1, 2, 3, 4]
        assert frames[-1].type is WSMsgType.CLOSE and ws.close_code == 1008
        assert fb.control_rate_violations == 1 and fb.open_connections() == 0
        assert len(fb.control_messages) == 6


async def test_too_many_streams_is_an_error(spot: list[dict[str, Any]], session: aiohttp.ClientSession) -> None:
    async with FakeBinance(spot, max_streams_per_connection=2) as fb:
        ws = await session.ws_connect(f"{fb.ws_url}/stream?streams=a@aggTrade/b@aggTrade/c@aggTrade")
        frames = await collect(ws)
        assert orjson.loads(frames[0].data) == {"error": {"code": 2, "msg": "too many streams"}}
        assert frames[-1].type is WSMsgType.CLOSE


async def test_close_after_aborts_without_close_frame(
    spot: list[dict[str, Any]], spot_lines: list[str], session: aiohttp.ClientSession
) -> None:
    async with FakeBinance(spot) as fb:
        fb.add_connection_faults(ConnectionFault(close_after=100))
        ws = await session.ws_connect(f"{fb.ws_url}/stream?streams={BTC}")
        frames = await play_and_collect(fb, ws)
        assert texts(frames) == lines_of(spot_lines, spot, BTC)[:100]
        assert frames[-1].type is WSMsgType.CLOSED and ws.close_code == 1006
        ws2 = await session.ws_connect(f"{fb.ws_url}/stream")
        assert fb.connections_accepted == 2 and fb.open_connections() == 1
        await ws2.close()


async def test_skip_drops_exactly_the_skipped_messages(
    spot: list[dict[str, Any]], spot_lines: list[str], session: aiohttp.ClientSession
) -> None:
    expected = lines_of(spot_lines, spot, BTC)
    async with FakeBinance(spot) as fb:
        fb.add_connection_faults(ConnectionFault(skip_after=10, skip_count=5))
        ws = await session.ws_connect(f"{fb.ws_url}/stream?streams={BTC}")
        frames = await play_and_collect(fb, ws, count=len(expected) - 5)
        assert texts(frames) == expected[:10] + expected[15:]


async def test_shutdown_notice_then_normal_close(
    spot: list[dict[str, Any]], spot_lines: list[str], session: aiohttp.ClientSession
) -> None:
    expected = lines_of(spot_lines, spot, BTC)
    async with FakeBinance(spot) as fb:
        fb.shutdown_grace = 0.3
        fb.add_connection_faults(ConnectionFault(shutdown_after=20))
        ws = await session.ws_connect(f"{fb.ws_url}/stream?streams={BTC}")
        started = time.monotonic()
        frames = await play_and_collect(fb, ws)
        notice = orjson.loads(frames[20].data)
        assert notice["stream"] == "!serverShutdown" and notice["data"]["e"] == "serverShutdown"
        assert abs(notice["data"]["E"] - time.time() * 1000) < 5000
        assert texts(frames[:20] + frames[21:]) == expected
        assert frames[-1].type is WSMsgType.CLOSE and ws.close_code == 1000
        assert time.monotonic() - started >= 0.3


async def test_stall_stops_data_but_keeps_answering_pings(
    spot: list[dict[str, Any]], spot_lines: list[str], session: aiohttp.ClientSession
) -> None:
    async with FakeBinance(spot, ping_interval=0.05) as fb:
        fb.add_connection_faults(ConnectionFault(stall_after=30))
        ws = await session.ws_connect(f"{fb.ws_url}/stream?streams={BTC}")
        reader = asyncio.create_task(collect(ws, within=0.6))
        fb.play()
        await fb.wait_played(10)
        pongs = fb.pongs_received
        frames = await reader
        assert texts(frames) == lines_of(spot_lines, spot, BTC)[:30]
        assert fb.pongs_received > pongs and not ws.closed and fb.open_connections() == 1


async def test_garbage_frames_then_normal_stream(
    spot: list[dict[str, Any]], spot_lines: list[str], session: aiohttp.ClientSession
) -> None:
    expected = lines_of(spot_lines, spot, BTC)
    async with FakeBinance(spot) as fb:
        fb.add_connection_faults(ConnectionFault(garbage_after=5))
        ws = await session.ws_connect(f"{fb.ws_url}/stream?streams={BTC}")
        frames = await play_and_collect(fb, ws, count=len(expected) + 5)
        garbage = frames[5:10]
        assert [f.data for f in frames[:5]] + [f.data for f in frames[10:]] == expected
        assert garbage[0].data == "not json"
        assert garbage[1].data == expected[5][: len(expected[5]) // 2]
        assert garbage[2].type is WSMsgType.BINARY
        assert orjson.loads(garbage[3].data) == {"stream": "x@aggTrade", "data": {"e": "aggTrade"}}
        negative = orjson.loads(garbage[4].data)
        assert negative["data"]["p"] == "-1" and negative["data"]["a"] == orjson.loads(expected[5])["data"]["a"]


async def test_refused_handshake_is_http_503(spot: list[dict[str, Any]], session: aiohttp.ClientSession) -> None:
    async with FakeBinance(spot) as fb:
        fb.refuse_connections(1)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{fb.ws_url}/stream?streams={BTC}")
        assert refused.value.status == 503 and fb.handshakes_refused == 1
        ws = await session.ws_connect(f"{fb.ws_url}/stream?streams={BTC}")
        assert fb.connections_accepted == 1 and fb.open_connections() == 1
        await ws.close()


async def test_rest_answers_only_from_the_played_part(
    spot: list[dict[str, Any]], session: aiohttp.ClientSession
) -> None:
    async with FakeBinance(spot, rate=5000) as fb:
        url = f"{fb.rest_url}/api/v3/aggTrades"

        async def get(**params: Any) -> Any:
            async with session.get(url, params={"symbol": "BTCUSDT", **params}) as response:
                assert response.status == 200 and response.content_type == "application/json"
                return await response.json()

        assert await get() == []
        fb.play()
        await asyncio.sleep(0.15)
        fb.pause()
        played = fb.played
        assert 0 < played < len(spot)
        known = rows_of(spot[:played], "BTCUSDT")
        assert await get(limit=5) == known[-5:]
        assert await get(fromId=known[3]["a"], limit=10) == known[3:13]
        assert await get(startTime=known[2]["T"], limit=4) == [r for r in known if r["T"] >= known[2]["T"]][:4]
        assert await get(startTime=known[0]["T"], endTime=known[-1]["T"], limit=1000) == known
        assert await get(fromId=known[-1]["a"] + 1) == []
        assert fb.rest_requests[1] == {"symbol": "BTCUSDT", "limit": "5"}
        fb.resume()
        await fb.wait_played(10)
        everything = rows_of(spot, "BTCUSDT")
        assert await get(fromId=known[-1]["a"] + 1, limit=1000) == everything[len(known) :]
        assert fb.aggtrade_history("BTCUSDT") == everything


async def test_rest_errors_and_rate_limit(spot: list[dict[str, Any]], session: aiohttp.ClientSession) -> None:
    async with FakeBinance(spot) as fb:
        url = f"{fb.rest_url}/api/v3/aggTrades"
        fb.rest_fail(2)
        for _ in range(2):
            async with session.get(url, params={"symbol": "BTCUSDT"}) as response:
                assert response.status == 429 and response.headers["Retry-After"] == "1"
                assert await response.json() == {"code": -1003, "msg": "Too many requests"}
        async with session.get(url, params={"symbol": "BTCUSDT"}) as response:
            assert response.status == 200
        async with session.get(url, params={"symbol": "NOPE"}) as response:
            assert response.status == 400 and (await response.json())["code"] == -1121
        async with session.get(url, params={"symbol": "BTCUSDT", "fromId": "1", "startTime": "1"}) as response:
            assert response.status == 400
        fb.rest_refuse = True
        async with session.get(url, params={"symbol": "BTCUSDT"}) as response:
            assert response.status == 503
        async with session.get(f"{fb.rest_url}/api/v3/ping") as response:
            assert await response.json() == {}
        assert len(fb.rest_requests) == 6


async def test_usdm_rest_has_no_best_match_and_given_history(shared_data: Path, session: aiohttp.ClientSession) -> None:
    tape = load_ws_recording(shared_data / USDM)
    older = load_rest_aggtrades(shared_data / "BTCUSDT-rest-aggTrades.json", "BTCUSDT")
    async with FakeBinance(tape, market="usdm", rest_history={"BTCUSDT": older}) as fb:
        fb.play()
        await fb.wait_played(10)
        async with session.get(f"{fb.rest_url}/fapi/v1/aggTrades", params={"symbol": "CTKUSDT"}) as response:
            rows = await response.json()
        assert len(rows) == 127 and "M" not in rows[0]
        assert [r["a"] for r in rows] == sorted(r["a"] for r in rows)
        async with session.get(f"{fb.rest_url}/fapi/v1/aggTrades", params={"symbol": "BTCUSDT"}) as response:
            assert [r["a"] for r in await response.json()] == [e["a"] for e in older]
        async with session.get(f"{fb.rest_url}/fapi/v1/ping") as response:
            assert await response.json() == {}


async def test_trade_tape_synthesises_exact_aggtrades(shared_data: Path, session: aiohttp.ClientSession) -> None:
    tape = load_ws_recording(shared_data / TRADES)
    trades = {m["data"]["t"]: m["data"] for m in tape}
    async with FakeBinance(tape) as fb:
        history = fb.aggtrade_history("ETHUSDT")
        covered = [t for row in history for t in range(row["f"], row["l"] + 1)]
        assert covered == [m["data"]["t"] for m in tape]
        assert [row["a"] for row in history] == list(range(1_000_000, 1_000_000 + len(history)))
        for row in history:
            group = [trades[t] for t in range(row["f"], row["l"] + 1)]
            assert {(d["T"], d["p"], d["m"]) for d in group} == {(row["T"], row["p"], row["m"])}
            assert Decimal(row["q"]) == sum(Decimal(d["q"]) for d in group)
            assert len(row["q"].partition(".")[2]) == 8
        assert len(history) < len(tape)
        fb.play()
        await fb.wait_played(10)
        params = {"symbol": "ETHUSDT", "fromId": "1000000", "limit": "1000"}
        async with session.get(f"{fb.rest_url}/api/v3/aggTrades", params=params) as response:
            assert await response.json() == history[:1000]


def test_loop_recording_keeps_ids_contiguous(spot: list[dict[str, Any]], shared_data: Path) -> None:
    looped = loop_recording(spot, 3)
    assert len(looped) == 3 * len(spot) and looped[: len(spot)] == spot
    by_symbol: dict[str, list[dict[str, Any]]] = {}
    for message in looped:
        by_symbol.setdefault(message["data"]["s"], []).append(message["data"])
    for events in by_symbol.values():
        assert all(b["a"] == a["a"] + 1 and b["f"] == a["l"] + 1 for a, b in pairwise(events))
        times = [e["T"] for e in events]
        assert times == sorted(times)
    trades = loop_recording(load_ws_recording(shared_data / TRADES), 2)
    ids = [m["data"]["t"] for m in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids)))


async def test_close_is_fast_with_open_connections(spot: list[dict[str, Any]], session: aiohttp.ClientSession) -> None:
    fb = FakeBinance(spot, ping_interval=0.05)
    await fb.start()
    sockets = [await session.ws_connect(f"{fb.ws_url}/stream?streams={BTC}") for _ in range(3)]
    readers = [asyncio.create_task(collect(ws)) for ws in sockets]
    fb.play()
    started = time.monotonic()
    await fb.close()
    assert time.monotonic() - started < 1.0
    for reader in readers:
        assert (await reader)[-1].type in END
    assert fb.open_connections() == 0

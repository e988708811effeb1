"""The event bus on Redis Streams (against a real Redis) and the event codec it relies on."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis.asyncio as redis
from hypothesis import given
from hypothesis import strategies as st

from core.events import (
    Event,
    FeedHealthReport,
    FeedStatusChanged,
    Gap,
    GapUnfilled,
    Signal,
    TradeBatch,
    WindowClosed,
)
from core.features import WindowFeatures
from core.trades import Trade
from engine.bus import InMemoryBus, Subscription
from engine.bus_factory import make_bus
from engine.bus_redis import RedisStreamsBus
from engine.event_codec import CodecError, decode, encode

REPO = Path(__file__).resolve().parents[1]
FEATURES = WindowFeatures(
    "BTCUSDT", 1_767_225_600_000, 1_767_225_605_000, 8_765_432_100_000, 8_765_500_000_000, 8_765_400_000_000,
    8_765_450_000_000, 123_456_789, 10**25 + 7, 100_000_000, 23_456_789, 6 * 10**24, 4 * 10**24 + 7, 76_543_211,
    -(10**19), 42, 2, 3 * 10**23, 0, 5_000_001, 5_000_042, 0, 10**21, True, 3.25,
)


def signal(n: int) -> Signal:
    return Signal(f"BTCUSDT-whale-{n}", "BTCUSDT", "whale", "buy", 2, n * 5000, n * 5000 + 5000,
                  {"quote": 10**24, "trades": [1, 2], "ids": (5, 6), "share": 0.75, "note": None}, 1_767_225_600.5)


def every_kind() -> list[Event]:
    trade = Trade("BTCUSDT", 5_000_001, 7_000_001, 7_000_003, 8_765_432_100_000, 1_234_567, 1_767_225_600_001,
                  1_767_225_600_002, True)
    return [
        TradeBatch("BTCUSDT", (trade, trade._replace(id=5_000_002, is_sell=False))),
        GapUnfilled(Gap("BTCUSDT", 10, 12, 1_767_225_600.25, "rest gave up")),
        FeedHealthReport({"healthy": True, "symbols": {"BTCUSDT": {"trades": 3, "lag_ms": None}},
                          "rejected": {}, "unfilled_gaps": [{"symbol": "BTCUSDT", "count": 3}]}),
        FeedStatusChanged("spot-0", False, 15, "refused"),
        WindowClosed(FEATURES, 1),
        signal(1),
    ]


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test only; its keys are deleted afterwards."""
    prefix = f"flowbot-test-{uuid4().hex}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def make(redis_url: str, prefix: str) -> AsyncIterator[Callable[..., RedisStreamsBus]]:
    """Buses on this test's prefix, closed afterwards."""
    buses: list[RedisStreamsBus] = []

    def make(**options: Any) -> RedisStreamsBus:
        buses.append(RedisStreamsBus(redis_url, prefix=prefix, block_ms=50, **options))
        return buses[-1]

    yield make
    for bus in buses:
        await bus.close(timeout=2)


async def take(subscription: Subscription, count: int) -> list[Event]:
    return [await asyncio.wait_for(subscription.get(), 10) for _ in range(count)]


async def until(condition: Callable[[], bool]) -> None:
    """Wait for `condition` (a guard of 10 s against a hang, not a timing assertion)."""
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)


async def test_every_event_kind_round_trips_through_redis(make: Callable[..., RedisStreamsBus]) -> None:
    bus = make()
    events = every_kind()
    everything = bus.subscribe(*{type(e) for e in events}, name="everything")
    for event in events:
        bus.publish(event)
    received = await take(everything, len(events))
    assert sorted(received, key=lambda e: type(e).__name__) == sorted(events, key=lambda e: type(e).__name__)
    assert everything.depth == 0 and everything.undecodable == 0


async def test_each_group_gets_every_event_in_order(make: Callable[..., RedisStreamsBus]) -> None:
    bus = make()
    bots, analyst = bus.subscribe(Signal, name="bots"), bus.subscribe(Signal, name="analyst")
    signals = [signal(n) for n in range(20)]
    for s in signals:
        bus.publish(s)
    assert await take(bots, 20) == signals
    assert await take(analyst, 20) == signals


async def test_consumers_of_one_group_share_the_work(make: Callable[..., RedisStreamsBus]) -> None:
    host_a, host_b, publisher = make(consumer_id="host-a"), make(consumer_id="host-b"), make()
    first = host_a.subscribe(Signal, name="bots", maxsize=5)
    second = host_b.subscribe(Signal, name="bots", maxsize=5)
    await asyncio.gather(host_a.wait_ready(), host_b.wait_ready())
    signals = [signal(n) for n in range(10)]
    for s in signals:
        publisher.publish(s)
    await until(lambda: first.depth + second.depth == 10)  # each reads no more than its queue holds
    assert first.depth == second.depth == 5
    shared = await take(first, 5) + await take(second, 5)
    assert sorted(s.id for s in shared) == sorted(s.id for s in signals)


CRASHING_CONSUMER = """
import asyncio, sys
from engine.bus_redis import RedisStreamsBus
from core.events import Signal

async def main() -> None:
    bus = RedisStreamsBus(sys.argv[1], prefix=sys.argv[2], block_ms=50)
    signals = bus.subscribe(Signal, name="bots")
    await bus.wait_ready()
    print("ready", flush=True)
    print((await signals.get()).id, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_an_event_taken_by_a_killed_consumer_is_delivered_again_after_restart(
    make: Callable[..., RedisStreamsBus], redis_url: str, prefix: str, client: redis.Redis
) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_CONSUMER, redis_url, prefix, cwd=REPO, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert await asyncio.wait_for(child.stdout.readline(), 20) == b"ready\n"
        publisher = make()
        signals = [signal(n) for n in range(3)]
        for s in signals:
            publisher.publish(s)
        assert await asyncio.wait_for(child.stdout.readline(), 10) == f"{signals[0].id}\n".encode()
    finally:
        child.kill()
        await child.wait()
    restarted = make()  # same host, same group: the same consumer, reading its own pending entries first
    again = restarted.subscribe(Signal, name="bots")
    assert await take(again, 3) == signals
    again.close()  # the last one is finished: every entry is acknowledged
    await until_async(lambda: _pending(client, restarted.stream_key(Signal), "bots", 0))


async def test_entries_a_stuck_consumer_left_idle_are_claimed_by_another(make: Callable[..., RedisStreamsBus]) -> None:
    stuck_bus = make(consumer_id="stuck")
    stuck = stuck_bus.subscribe(Signal, name="bots")
    await stuck_bus.wait_ready()
    signals = [signal(n) for n in range(3)]
    for s in signals:
        stuck_bus.publish(s)
    assert await take(stuck, 1) == signals[:1]  # and never takes the next one
    await until(lambda: stuck.depth == 2)
    rescuer = make(consumer_id="rescuer", claim_idle_ms=1).subscribe(Signal, name="bots")
    assert sorted(s.id for s in await take(rescuer, 3)) == sorted(s.id for s in signals)


async def test_corrupt_entries_are_counted_acknowledged_and_skipped(
    make: Callable[..., RedisStreamsBus], client: redis.Redis
) -> None:
    bus = make()
    signals = bus.subscribe(Signal, name="bots")
    await bus.wait_ready()
    stream = bus.stream_key(Signal)
    await client.xadd(stream, {b"e": b"{not json"})
    await client.xadd(stream, {b"e": encode(FeedStatusChanged("spot-0", True, 0, "ok"))})
    bus.publish(signal(1))
    assert await take(signals, 1) == [signal(1)]
    assert signals.undecodable == 2


async def test_streams_stay_bounded(make: Callable[..., RedisStreamsBus], client: redis.Redis) -> None:
    bus = make(maxlen=100)
    for n in range(3000):
        bus.publish(FeedStatusChanged(f"spot-{n}", True, 0, "ok"))
    assert await bus.flush(timeout=20)
    assert bus.sent == 3000
    assert 100 <= await client.xlen(bus.stream_key(FeedStatusChanged)) <= 300  # MAXLEN ~ trims whole nodes


async def test_publishing_while_redis_is_unreachable_never_raises_and_counts_drops(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bus = RedisStreamsBus(f"redis://:s3cret@127.0.0.1:{port}/0", prefix=prefix, buffer_size=5)
    with caplog.at_level(logging.WARNING, logger="engine.bus_redis"):
        for n in range(8):
            bus.publish(signal(n))
        assert bus.publish_dropped == 3
        await until(lambda: "cannot write to Redis" in caplog.text)
        assert bus.has_subscribers(Signal)  # unknown: publish rather than lose events
        await bus.close(timeout=0.1)
    assert bus.sent == 0 and bus.published == 8
    assert f"127.0.0.1:{port}/0" in caplog.text and "s3cret" not in caplog.text
    bus.publish(signal(9))  # after close: still never raises
    assert bus.publish_dropped == 4


async def test_has_subscribers_follows_the_consumer_groups(make: Callable[..., RedisStreamsBus]) -> None:
    engine = make(groups_ttl=0)
    assert engine.has_subscribers(WindowClosed)  # not known yet
    await until(lambda: not engine.has_subscribers(WindowClosed))
    bots = make()
    bots.subscribe(WindowClosed, name="bot-mirror")
    await bots.wait_ready()
    await until(lambda: engine.has_subscribers(WindowClosed))
    assert bots.has_subscribers(WindowClosed)


async def test_make_bus_picks_the_bus_by_url(redis_url: str) -> None:
    assert isinstance(make_bus("memory://", 10), InMemoryBus)
    bus = make_bus(redis_url, 10)
    assert isinstance(bus, RedisStreamsBus) and bus.default_maxsize == 10
    await bus.close()
    with pytest.raises(ValueError, match="BUS_URL") as error:
        make_bus("amqp://user:pw@host/", 10)
    assert "pw" not in str(error.value)


async def until_async(condition: Callable[[], Any]) -> None:
    """Like `until`, for a condition that needs Redis."""
    async with asyncio.timeout(10):
        while not await condition():
            await asyncio.sleep(0.01)


async def _pending(client: redis.Redis, stream: str, group: str, count: int) -> bool:
    return (await client.xpending(stream, group))["pending"] == count


def test_every_event_kind_round_trips_through_the_codec() -> None:
    for event in every_kind():
        assert decode(encode(event)) == event


@pytest.mark.parametrize("payload", [
    b"", b"[]", b'{"v": 2, "kind": "Signal", "data": {}}', b'{"v": 1, "kind": "Order", "data": {}}',
    b'{"v": 1, "kind": "Signal", "data": {"id": "x"}}', b'{"v": 1, "kind": "TradeBatch", "data": {"symbol": "X"}}',
    b'{"v": 1, "kind": "TradeBatch", "data": {"symbol": "X", "trades": [["X", 1, 1, 1, 1, 1, 1, 1, 1]]}}',
    b'{"v": 1, "kind": "FeedHealthReport", "data": {"snapshot": {"$nope": 1}}}',
    b'{"v": 1, "kind": "FeedHealthReport", "data": {"snapshot": {"$dict": 5}}}',
])
def test_corrupt_payloads_raise_codec_errors(payload: bytes) -> None:
    with pytest.raises(CodecError):
        decode(payload)


def test_non_events_do_not_encode() -> None:
    with pytest.raises(CodecError):
        encode(FeedHealthReport({"when": object()}))
    with pytest.raises(CodecError):
        encode(WindowClosed({"not": "features"}))


floats = st.floats(allow_nan=False)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | floats | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@given(st.builds(WindowFeatures, burst_ratio=floats), st.integers())
def test_window_features_round_trip(features: WindowFeatures, revision: int) -> None:
    event = WindowClosed(features, revision)
    assert decode(encode(event)) == event


@given(st.builds(Signal, evidence=st.dictionaries(st.text(max_size=8), values, max_size=6), created_at=floats))
def test_signals_round_trip(event: Signal) -> None:
    decoded = decode(encode(event))
    assert decoded == event
    assert [type(v) for v in decoded.evidence.values()] == [type(v) for v in event.evidence.values()]

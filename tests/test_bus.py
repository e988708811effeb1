"""The in-memory event bus: typed fan-out, bounded queues, counted drops, never blocking the engine."""

from __future__ import annotations

import asyncio

from core.events import FeedStatusChanged, TradeBatch
from engine.bus import InMemoryBus


async def test_each_subscriber_gets_only_its_kinds_in_order() -> None:
    bus = InMemoryBus()
    trades = bus.subscribe(TradeBatch, name="trades")
    status = bus.subscribe(FeedStatusChanged, name="status")
    batches = [TradeBatch("BTCUSDT", ()) for _ in range(3)]
    for batch in batches:
        bus.publish(batch)
    bus.publish(FeedStatusChanged("spot-0", False, 15, "refused"))
    assert [await trades.get() for _ in range(3)] == batches
    assert (await status.get()).healthy is False
    assert trades.depth == 0 and status.depth == 0


async def test_a_slow_subscriber_loses_the_oldest_events_counted_and_never_blocks_publish() -> None:
    bus = InMemoryBus(default_maxsize=10)
    slow = bus.subscribe(TradeBatch, name="slow")
    fast = bus.subscribe(TradeBatch, name="fast", maxsize=1000)
    batches = [TradeBatch(f"S{i}", ()) for i in range(25)]
    for batch in batches:
        bus.publish(batch)  # synchronous: returns without any consumer running
    assert slow.dropped == 15 and fast.dropped == 0
    assert bus.dropped == {"slow": 15, "fast": 0}
    assert [await slow.get() for _ in range(10)] == batches[15:]
    assert [await fast.get() for _ in range(25)] == batches


async def test_closing_ends_iteration_after_draining() -> None:
    bus = InMemoryBus()
    sub = bus.subscribe(TradeBatch)
    bus.publish(TradeBatch("BTCUSDT", ()))

    async def consume() -> list[str]:
        return [event.symbol async for event in sub]

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    await bus.close()
    assert await asyncio.wait_for(task, 1) == ["BTCUSDT"]

"""The event bus on Redis Streams: a stream per event kind, a consumer group per subscriber name, at-least-once.

Publishing never blocks the engine: encoded events wait in a bounded in-process buffer that a background task
writes with pipelined `XADD <prefix>:events:<Kind> MAXLEN ~ maxlen`. While Redis is unreachable the buffer keeps
the newest events (the oldest are dropped, counted and logged) and the writes are retried with backoff.

A subscriber's consumer group is created at the stream's end ("$": only events published from then on) and, once
it exists, resumes where the group stopped. An entry is acknowledged when the consumer takes the next event (or
closes the subscription), so an event taken but not finished when the process dies is delivered again: to the
same consumer after a restart (its own pending entries are read first), or to another consumer of the group once
idle for `claim_idle_ms` (XAUTOCLAIM). Consumers must therefore be idempotent.

A subscription reads no more than its queue holds (Redis is the buffer), so nothing is dropped locally; its
`dropped` counts entries trimmed by MAXLEN before they could be delivered again, `undecodable` the corrupt ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import Coroutine, Iterable
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.typing import KeyT, StreamIdT

from core.events import Event
from engine.bus import Subscription, _is_power_of_ten
from engine.event_codec import CodecError, decode, encode

log = logging.getLogger(__name__)

FIELD = b"e"
Receipt = tuple[bytes, bytes]  # stream key, entry id


class StreamSubscription(Subscription):
    """A consumer group member: events come from Redis, each acknowledged once the next one is taken."""

    def __init__(self, name: str, kinds: tuple[type[Event], ...], maxsize: int, consumer: str) -> None:
        super().__init__(name, kinds, maxsize)
        self.consumer = consumer
        self.undecodable = 0
        self._receipts: deque[Receipt] = deque()
        self._current: Receipt | None = None
        self._done: list[Receipt] = []
        self._room = asyncio.Event()

    @property
    def room(self) -> int:
        return self.maxsize - len(self._queue)

    def put(self, event: Event, receipt: Receipt) -> None:
        """Queue an event read from Redis (the reader never reads more than `room`)."""
        self._queue.append(event)
        self._receipts.append(receipt)
        self._ready.set()

    def finished(self, receipt: Receipt) -> None:
        """Mark an entry for acknowledgement without delivering it (trimmed or undecodable)."""
        self._done.append(receipt)

    def holds(self, receipt: Receipt) -> bool:
        return receipt == self._current or receipt in self._receipts

    def to_acknowledge(self) -> list[Receipt]:
        """The entries finished with and not yet acknowledged, oldest first."""
        return list(self._done)

    def acknowledged(self, count: int) -> None:
        del self._done[:count]

    async def get(self) -> Event:
        event = await super().get()
        self._taken()
        return event

    def get_nowait(self) -> Event:
        event = super().get_nowait()
        self._taken()
        return event

    def close(self) -> None:
        if self._current is not None:
            self._done.append(self._current)
            self._current = None
        super().close()
        self._room.set()

    def _taken(self) -> None:
        if self._current is not None:
            self._done.append(self._current)
        self._current = self._receipts.popleft()
        self._room.set()

    async def wait_for_room(self) -> None:
        self._room.clear()
        if self.room <= 0 and not self.closed:
            await self._room.wait()


class _Backoff:
    """Exponential retry delay: 0.1 s doubling up to 5 s, reset on success."""

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self.first, self.cap, self.delay = first, cap, first

    async def sleep(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.cap)

    def reset(self) -> None:
        self.delay = self.first


class RedisStreamsBus:
    """The EventBus on Redis Streams, for engine shards and bot processes that run apart."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "flowbot",
        maxlen: int = 100_000,
        block_ms: int = 1000,
        default_maxsize: int = 10_000,
        buffer_size: int = 100_000,
        batch_size: int = 500,
        claim_idle_ms: int = 60_000,
        groups_ttl: float = 2.0,
        consumer_id: str | None = None,
    ) -> None:
        self.prefix = prefix
        self.maxlen = maxlen
        self.block_ms = block_ms
        self.default_maxsize = default_maxsize
        self.buffer_size = buffer_size
        self.batch_size = batch_size
        self.claim_idle_ms = claim_idle_ms
        self.groups_ttl = groups_ttl
        self.consumer_id = consumer_id or socket.gethostname()
        self.published = 0
        self.sent = 0
        self.publish_dropped = 0
        self.encode_errors = 0
        self._redis = redis.Redis.from_url(
            url, socket_connect_timeout=5, socket_timeout=block_ms / 1000 + 5, health_check_interval=30,
            retry=Retry(NoBackoff(), 0),
        )
        kwargs = self._redis.connection_pool.connection_kwargs
        self.where = f"{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db', 0)}"  # never the password
        self._buffer: deque[tuple[bytes, bytes]] = deque()
        self._wake = asyncio.Event()
        self._writing = 0
        self._writer: asyncio.Task[None] | None = None
        self._subscriptions: list[StreamSubscription] = []
        self._readers: set[asyncio.Task[None]] = set()
        self._setups: set[asyncio.Task[None]] = set()
        self._refreshing: dict[type[Event], asyncio.Task[None]] = {}
        self._groups: dict[type[Event], tuple[bool, float]] = {}
        self._closed = False

    def stream_key(self, kind: type[Event]) -> str:
        return f"{self.prefix}:events:{kind.__name__}"

    def publish(self, event: Event) -> None:
        """Queue the event for Redis without waiting; never raises."""
        self.published += 1
        if self._closed:
            self.publish_dropped += 1
            return
        try:
            payload = encode(event)
        except CodecError as exc:
            self.encode_errors += 1
            log.error("bus: %s not published: %s", type(event).__name__, exc)
            return
        self._buffer.append((self.stream_key(type(event)).encode(), payload))
        self._trim_buffer()
        self._wake.set()
        if self._writer is None or self._writer.done():
            with contextlib.suppress(RuntimeError):  # no running loop yet: the first publish inside one starts it
                self._writer = _spawn(self._write_forever(), "bus-redis-writer")

    def subscribe(self, *kinds: type[Event], name: str = "", maxsize: int | None = None) -> StreamSubscription:
        """Join (or create) the consumer group `name` on each kind's stream; call inside the running loop."""
        name = name or f"subscriber-{len(self._subscriptions) + 1}"
        same = sum(s.name == name for s in self._subscriptions)
        consumer = f"{name}@{self.consumer_id}" + (f"#{same + 1}" if same else "")
        subscription = StreamSubscription(name, kinds, maxsize or self.default_maxsize, consumer)
        self._subscriptions.append(subscription)
        setup = _spawn(self._create_groups(name, kinds), f"bus-redis-group-{name}", self._setups)
        _spawn(self._read(subscription, setup), f"bus-redis-reader-{consumer}", self._readers)
        return subscription

    def has_subscribers(self, kind: type[Event]) -> bool:
        """A local subscription wants `kind`, or its stream has a consumer group (checked every `groups_ttl` s)."""
        if any(kind in s.kinds and not s.closed for s in self._subscriptions):
            return True
        known = self._groups.get(kind)
        if (known is None or time.monotonic() - known[1] > self.groups_ttl) and kind not in self._refreshing:
            with contextlib.suppress(RuntimeError):
                task = _spawn(self._refresh_groups(kind), f"bus-redis-groups-{kind.__name__}")
                self._refreshing[kind] = task
                task.add_done_callback(lambda _: self._refreshing.pop(kind, None))
        return True if known is None else known[0]  # unknown yet: publish rather than lose events

    @property
    def dropped(self) -> dict[str, int]:
        return {s.consumer: s.dropped for s in self._subscriptions}

    async def wait_ready(self) -> None:
        """Wait until the consumer groups of every subscribe() so far exist (events from then on reach them)."""
        if self._setups:
            await asyncio.wait(set(self._setups))

    async def flush(self, timeout: float) -> bool:
        """Wait until every published event is written (True) or `timeout` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while self._buffer or self._writing:
            if self._writer is None or self._writer.done():
                self._writer = _spawn(self._write_forever(), "bus-redis-writer")
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def close(self, timeout: float = 5.0) -> None:
        """Write what is buffered (for up to `timeout` s), acknowledge what was taken, close the connection."""
        if self._closed:
            return
        self._closed = True
        if not await self.flush(timeout):
            log.warning("bus: %d events not written to Redis at %s before closing", len(self._buffer) + self._writing,
                        self.where)
        for subscription in self._subscriptions:
            subscription.close()
        tasks = [*self._readers, *self._setups, *self._refreshing.values()]
        if self._writer is not None:
            tasks.append(self._writer)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._redis.aclose()

    def _trim_buffer(self) -> None:
        while len(self._buffer) > self.buffer_size:
            self._buffer.popleft()
            self.publish_dropped += 1
            if _is_power_of_ten(self.publish_dropped):
                log.warning("bus: Redis at %s is behind: %d events dropped so far", self.where, self.publish_dropped)

    async def _write_forever(self) -> None:
        backoff = _Backoff()
        failing = False
        while True:
            if not self._buffer:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self.wait_ready()  # a group created in this process sees every event published after subscribe()
            batch = [self._buffer.popleft() for _ in range(min(len(self._buffer), self.batch_size))]
            self._writing = len(batch)
            try:
                results = await self._xadd(batch)
            except RedisError as exc:
                self._buffer.extendleft(reversed(batch))
                self._trim_buffer()
                if not failing:
                    log.warning("bus: cannot write to Redis at %s (%s); %d events buffered, retrying",
                                self.where, type(exc).__name__, len(self._buffer))
                failing = True
                await backoff.sleep()
                continue
            finally:
                self._writing = 0
            if failing:
                log.info("bus: writing to Redis at %s again", self.where)
            failing = False
            backoff.reset()
            errors = [r for r in results if isinstance(r, Exception)]
            self.sent += len(batch) - len(errors)
            if errors:
                self.publish_dropped += len(errors)
                log.error("bus: Redis at %s refused %d events: %s", self.where, len(errors), errors[0])

    async def _xadd(self, batch: list[tuple[bytes, bytes]]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for stream, payload in batch:
            pipe.xadd(stream, {FIELD: payload}, maxlen=self.maxlen, approximate=True)
        return await pipe.execute(raise_on_error=False)

    async def _create_groups(self, group: str, kinds: Iterable[type[Event]]) -> None:
        """XGROUP CREATE ... $ MKSTREAM for each kind, retried until Redis answers; an existing group is kept."""
        backoff = _Backoff()
        for kind in kinds:
            failures = 0
            while True:
                try:
                    await self._redis.xgroup_create(self.stream_key(kind), group, id="$", mkstream=True)
                except RedisError as exc:
                    if not (isinstance(exc, ResponseError) and "BUSYGROUP" in str(exc)):
                        failures += 1
                        if _is_power_of_ten(failures):
                            log.warning("bus: cannot create group %s at %s (%s: %s); retrying", group, self.where,
                                        type(exc).__name__, exc)
                        await backoff.sleep()
                        continue
                self._groups[kind] = (True, time.monotonic())
                break

    async def _refresh_groups(self, kind: type[Event]) -> None:
        try:
            groups = await self._redis.xinfo_groups(self.stream_key(kind))
        except ResponseError:  # no such stream yet
            groups = []
        except RedisError:
            return
        self._groups[kind] = (bool(groups), time.monotonic())

    async def _read(self, sub: StreamSubscription, setup: asyncio.Task[None]) -> None:
        """Deliver the group's entries to `sub`: its own pending ones first, then idle ones of others, then new."""
        streams = [self.stream_key(kind).encode() for kind in sub.kinds]
        history: dict[KeyT, StreamIdT] = dict.fromkeys(streams, b"0")
        backoff = _Backoff()
        next_claim = 0.0
        try:
            await asyncio.shield(setup)
            while not sub.closed:
                try:
                    await self._ack(sub)
                    if sub.room <= 0:
                        await sub.wait_for_room()
                    elif history:
                        await self._read_history(sub, history)
                    elif time.monotonic() >= next_claim:
                        await self._claim(sub, streams)
                        next_claim = time.monotonic() + max(self.claim_idle_ms, self.block_ms) / 1000
                    else:
                        response = await self._redis.xreadgroup(
                            sub.name, sub.consumer, dict.fromkeys(streams, b">"), count=sub.room, block=self.block_ms
                        )
                        self._deliver(sub, _entries(response))
                    backoff.reset()
                except ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        log.error("bus: %s: Redis at %s answered %s; retrying", sub.consumer, self.where, exc)
                        await backoff.sleep()
                        continue
                    log.warning("bus: group %s vanished at %s; creating it again", sub.name, self.where)
                    await self._create_groups(sub.name, sub.kinds)
                except RedisError as exc:
                    log.warning("bus: %s cannot read from Redis at %s (%s); retrying", sub.consumer, self.where,
                                type(exc).__name__)
                    await backoff.sleep()
        finally:
            with contextlib.suppress(RedisError):
                await self._ack(sub)

    async def _read_history(self, sub: StreamSubscription, history: dict[KeyT, StreamIdT]) -> None:
        """One page of this consumer's own pending entries (delivered before a restart, never acknowledged)."""
        response = await self._redis.xreadgroup(sub.name, sub.consumer, history, count=sub.room)
        for stream, entries in _entries(response):
            if entries:
                history[stream] = entries[-1][0]
                self._deliver(sub, [(stream, entries)])
            else:
                del history[stream]

    async def _claim(self, sub: StreamSubscription, streams: list[bytes]) -> None:
        """Take over entries other consumers of the group left unacknowledged for `claim_idle_ms`."""
        for stream in streams:
            if sub.room <= 0:
                return
            _, entries, *deleted = await self._redis.xautoclaim(
                stream, sub.name, sub.consumer, min_idle_time=self.claim_idle_ms, count=sub.room
            )
            sub.dropped += len(deleted[0]) if deleted else 0
            self._deliver(sub, [(stream, [(i, f) for i, f in entries if not sub.holds((stream, i))])])

    def _deliver(self, sub: StreamSubscription, streams: Iterable[tuple[bytes, list[tuple[bytes, Any]]]]) -> None:
        for stream, entries in streams:
            for entry_id, fields in entries:
                receipt = (stream, entry_id)
                payload = fields.get(FIELD) if fields else None
                if payload is None:  # trimmed by MAXLEN while pending
                    sub.dropped += 1
                    sub.finished(receipt)
                    continue
                try:
                    event = decode(payload)
                    if not isinstance(event, sub.kinds):
                        raise CodecError(f"a {type(event).__name__} on the stream of another kind")
                except CodecError as exc:
                    sub.undecodable += 1
                    sub.finished(receipt)
                    if _is_power_of_ten(sub.undecodable):
                        log.error("bus: %s skipped %d undecodable entries; latest %s %s: %s", sub.consumer,
                                  sub.undecodable, stream.decode(), entry_id.decode(), exc)
                    continue
                sub.put(event, receipt)

    async def _ack(self, sub: StreamSubscription) -> None:
        """XACK what the consumer has finished with."""
        done = sub.to_acknowledge()
        if not done:
            return
        by_stream: dict[bytes, list[bytes]] = {}
        for stream, entry_id in done:
            by_stream.setdefault(stream, []).append(entry_id)
        pipe = self._redis.pipeline(transaction=False)
        for stream, ids in by_stream.items():
            pipe.xack(stream, sub.name, *ids)
        await pipe.execute()
        sub.acknowledged(len(done))


def _spawn(
    work: Coroutine[Any, Any, None], name: str, into: set[asyncio.Task[None]] | None = None
) -> asyncio.Task[None]:
    """A background task of the running loop whose failure is logged, kept in `into` while it runs."""
    task = asyncio.get_running_loop().create_task(work, name=name)
    if into is not None:
        into.add(task)
        task.add_done_callback(into.discard)
    task.add_done_callback(_log_failure)
    return task


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("bus: %s failed", task.get_name(), exc_info=task.exception())


def _entries(response: Any) -> list[tuple[bytes, list[tuple[bytes, Any]]]]:
    """XREADGROUP's answer (RESP2: a list of [stream, entries]) as (stream, entries) pairs."""
    return [(stream, entries) for stream, entries in response or ()]

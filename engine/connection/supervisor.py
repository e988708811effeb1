"""Keeps one slice of streams connected: backoff, watchdog, and gap-free rotation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from core.events import FeedStatusChanged
from core.health import ConnectionHealth
from engine.bus import EventBus
from engine.connection.pacing import ConnectionPacer, backoff_delay
from engine.connection.websocket import StreamConnection

log = logging.getLogger(__name__)

CONNECT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


@dataclass(frozen=True)
class SupervisorPolicy:
    """Timing rules of one supervised connection."""

    health_check_interval: float
    stall_timeout: float
    rotate_after: float
    rotation_overlap: float
    max_failures: int
    base_delay: float
    max_delay: float
    open_timeout: float = 10.0


class ConnectionSupervisor:
    """Owns the live connection of one stream slice and replaces it when it dies, stalls or ages.

    Replacement for age (about 23 h) or the venue's shutdown notice opens the new connection first, lets
    both deliver (the sequencer drops the duplicates) and only then closes the old one. A connection
    that closed or stalled is replaced after backoff, and `on_resumed` lets the feed catch up over REST.
    """

    def __init__(
        self,
        name: str,
        make_connection: Callable[[str], StreamConnection],
        policy: SupervisorPolicy,
        health: ConnectionHealth,
        bus: EventBus,
        pacer: ConnectionPacer,
        on_resumed: Callable[[], None],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self.make_connection = make_connection
        self.policy = policy
        self.health = health
        self.bus = bus
        self.pacer = pacer
        self.on_resumed = on_resumed
        self.sleep = sleep
        self.current: StreamConnection | None = None
        self._generation = 0
        self._retiring: set[StreamConnection] = set()

    async def run(self) -> None:
        try:
            current = await self._connect()
            while True:
                trouble = await self._watch(current)
                log.info("connection %s: %s", current.name, trouble)
                if trouble in ("age", "shutdown notice"):
                    self.health.rotations += 1
                    current = await self._rotate(current)
                    continue
                if trouble == "stalled":
                    self.health.watchdog_restarts += 1
                else:
                    self.health.reconnects += 1
                await current.close()
                self.health.connected = False
                if current.messages == 0:
                    self._failed(f"{trouble} before delivering anything")
                    await self.sleep(self._delay())
                current = await self._connect()
                self.on_resumed()
        finally:
            await self.close()

    async def close(self) -> None:
        for connection in [self.current, *self._retiring]:
            if connection is not None:
                await connection.close()
        self.health.connected = False

    async def _connect(self) -> StreamConnection:
        """Open a new connection, retrying with backoff for as long as it takes."""
        while True:
            await self.pacer.wait_turn()
            self._generation += 1
            connection = self.make_connection(f"{self.name}#{self._generation}")
            try:
                await asyncio.wait_for(connection.open(), self.policy.open_timeout)
            except CONNECT_ERRORS as exc:
                await connection.close()
                self._failed(failure_reason(exc))
                await self.sleep(self._delay())
                continue
            self.current = connection
            self.health.connected = True
            self.health.connected_since = time.time()
            return connection

    async def _watch(self, connection: StreamConnection) -> str:
        """Wait until the connection closes, is told to shut down, ages out or stalls."""
        policy = self.policy
        while True:
            if connection.closed.is_set():
                return f"closed ({connection.close_reason or 'no reason given'})"
            if connection.shutdown_notice.is_set():
                return "shutdown notice"
            now = time.monotonic()
            age = now - connection.opened_at
            if age >= policy.rotate_after:
                return "age"
            idle = connection.idle_for(now)
            self.health.messages = connection.messages
            if connection.messages:
                self.health.last_message_at = time.time() - idle
            if idle > policy.stall_timeout:
                return "stalled"
            watched: tuple[asyncio.Event, ...] = (connection.closed, connection.shutdown_notice)
            if not connection.first_message.is_set():
                watched += (connection.first_message,)
            elif self.health.consecutive_failures:
                self._recovered()
            await _wait_any(watched, min(policy.health_check_interval, policy.rotate_after - age))

    async def _rotate(self, old: StreamConnection) -> StreamConnection:
        """Open the successor first, overlap, then retire the old connection."""
        self._retiring.add(old)
        try:
            new = await self._connect()
            await _wait_any((new.first_message, new.closed), self.policy.open_timeout)
            await self.sleep(self.policy.rotation_overlap)
        finally:
            await old.close()
            self._retiring.discard(old)
        return new

    def _failed(self, reason: str) -> None:
        health = self.health
        health.consecutive_failures += 1
        health.last_error = reason
        log.warning("connection %s failed (%d in a row): %s", self.name, health.consecutive_failures, reason)
        if health.healthy and health.consecutive_failures >= self.policy.max_failures:
            health.healthy = False
            log.error("feed %s is unhealthy after %d failures; retrying at the cap", self.name,
                      health.consecutive_failures)
            self.bus.publish(FeedStatusChanged(self.name, False, health.consecutive_failures, reason))

    def _recovered(self) -> None:
        health = self.health
        was_unhealthy = not health.healthy
        health.consecutive_failures = 0
        health.healthy = True
        if was_unhealthy:
            log.info("feed %s recovered", self.name)
            self.bus.publish(FeedStatusChanged(self.name, True, 0, "delivering again"))

    def _delay(self) -> float:
        failures = max(1, self.health.consecutive_failures)
        return backoff_delay(failures, self.policy.base_delay, self.policy.max_delay)


def failure_reason(exc: BaseException) -> str:
    """Why a connection could not open, in words an operator acts on (no URL, so no query string)."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve {exc.host}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        why = "refused" if isinstance(exc.os_error, ConnectionRefusedError) else exc.os_error.strerror or exc.os_error
        return f"cannot connect to {exc.host}:{exc.port} ({why})"
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"refused by the server: HTTP {exc.status} {exc.message}".rstrip()
    if isinstance(exc, TimeoutError):
        return "no answer within the open timeout"
    return f"{type(exc).__name__}: {exc}"


async def _wait_any(events: tuple[asyncio.Event, ...], timeout: float) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waiters, return_exceptions=True)

"""Pacing of what venues limit: new connections per period, control messages per second; and backoff."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque


class ConnectionPacer:
    """At most `limit` new connections in any `period` seconds."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._opened: deque[float] = deque()

    async def wait_turn(self) -> None:
        while True:
            now = time.monotonic()
            while self._opened and now - self._opened[0] >= self.period:
                self._opened.popleft()
            if len(self._opened) < self.limit:
                self._opened.append(now)
                return
            await asyncio.sleep(self.period - (now - self._opened[0]))


class ControlPacer:
    """Spaces control messages on one connection: at most `per_second`."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self._next = 0.0

    async def wait_turn(self) -> None:
        now = time.monotonic()
        if now < self._next:
            await asyncio.sleep(self._next - now)
            now = self._next
        self._next = now + self.interval


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter, capped, and never so short that a retry loop spins."""
    ceiling = min(cap, base * 2 ** max(0, failures - 1))
    return max(base / 10, random.uniform(0, ceiling))

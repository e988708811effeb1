"""Server-Sent Events fan-out: each connected page has a bounded queue of encoded events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import orjson

CLIENT_QUEUE = 1_000  # events a slow page may lag behind; beyond, its newer events are skipped (cards are whole)


def sse(event: str, data: Any) -> bytes:
    """One SSE message: a named event with one line of JSON."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class Broadcaster:
    """Sends each event to every listening page; close() ends every stream."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[bytes | None]] = set()
        self.closed = False

    @contextlib.contextmanager
    def listen(self) -> Iterator[asyncio.Queue[bytes | None]]:
        """A queue of this page's events (None: the stream ends), registered while the block runs."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(CLIENT_QUEUE)
        if self.closed:
            queue.put_nowait(None)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    def send(self, event: str, data: Any) -> None:
        message = sse(event, data)
        for queue in self._queues:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(message)

    def close(self) -> None:
        self.closed = True
        for queue in self._queues:
            while queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

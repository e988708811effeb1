"""One WebSocket connection to a venue's streams: open, subscribe, read frames, close."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import aiohttp

from engine.connection.pacing import ControlPacer

log = logging.getLogger(__name__)


class StreamConnection:
    """Reads text frames and hands each to `on_text`; events tell its supervisor what happened."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        subscribe_requests: list[str],
        *,
        name: str,
        on_text: Callable[[str, StreamConnection], None],
        on_bad_frame: Callable[[str], None],
        ping_interval: float,
        control_per_second: float,
        open_timeout: float = 10.0,
    ) -> None:
        self.session = session
        self.url = url
        self.subscribe_requests = subscribe_requests
        self.name = name
        self.on_text = on_text
        self.on_bad_frame = on_bad_frame
        self.ping_interval = ping_interval
        self.open_timeout = open_timeout
        self.messages = 0
        self.opened_at = 0.0  # monotonic
        self._progress_seen = 0
        self._progress_at = 0.0  # monotonic: when the watchdog last saw the message count move
        self.first_message = asyncio.Event()
        self.closed = asyncio.Event()
        self.shutdown_notice = asyncio.Event()
        self.close_reason = ""
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._control = ControlPacer(control_per_second)

    async def open(self) -> None:
        """Connect and subscribe; raises aiohttp.ClientError, TimeoutError or OSError on failure."""
        self._ws = await self.session.ws_connect(
            self.url,
            heartbeat=self.ping_interval,
            autoping=True,
            timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
            max_msg_size=16 * 1024 * 1024,
        )
        self.opened_at = self._progress_at = time.monotonic()
        self._reader = asyncio.create_task(self._read(), name=f"ws-read-{self.name}")
        for request in self.subscribe_requests:
            await self.send_control(request)

    async def send_control(self, request: str) -> None:
        """Send a control message (e.g. a subscribe request), paced under the venue's limit."""
        await self._control.wait_turn()
        if self._ws is not None and not self._ws.closed:
            await self._ws.send_str(request)

    async def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        on_text = self.on_text
        try:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    self.messages += 1
                    if self.messages == 1:
                        self.first_message.set()
                    on_text(message.data, self)
                elif message.type is aiohttp.WSMsgType.BINARY:
                    self.messages += 1
                    self.on_bad_frame("binary_frame")
                elif message.type is aiohttp.WSMsgType.ERROR:
                    self.close_reason = f"error: {ws.exception()!r}"
                    break
            else:
                self.close_reason = self.close_reason or f"closed by server (code {ws.close_code})"
        except Exception as exc:  # a handler bug must not kill the feed silently
            log.exception("connection %s: reader failed", self.name)
            self.close_reason = f"reader failed: {exc!r}"
        finally:
            self.closed.set()

    def idle_for(self, now: float) -> float:
        """Seconds without a new message (or since opening), as seen by successive watchdog checks."""
        if self.messages != self._progress_seen:
            self._progress_seen = self.messages
            self._progress_at = now
        return now - self._progress_at

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2.0)
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self.closed.set()

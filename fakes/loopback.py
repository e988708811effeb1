"""The common part of our fake services: an aiohttp application on 127.0.0.1 at a free port."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

from aiohttp import web


class LoopbackServer:
    """Serves `build_app()` on 127.0.0.1 at a free port, as an async context manager. Closing cancels the
    answers still in flight (see `answering`), then `stop_work()` lets a subclass end its own work (open
    sockets, background tasks) before the server stops."""

    shutdown_timeout = 0.1  # seconds the runner waits for open connections at close
    cancel_abandoned_handlers = False  # cancel a handler whose client gave up (delayed answers)

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._answering: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    @property
    def url(self) -> str:
        """The host URL, http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self.port}"

    def build_app(self) -> web.Application:
        raise NotImplementedError

    async def start(self) -> None:
        """Serve on 127.0.0.1 at a free port."""
        self._runner = web.AppRunner(self.build_app(), access_log=None, shutdown_timeout=self.shutdown_timeout,
                                     handler_cancellation=self.cancel_abandoned_handlers)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Inside a handler: while the block runs, closing the server cancels it (delayed answers included)."""
        task = asyncio.current_task()
        assert task is not None
        self._answering.add(task)
        try:
            yield
        finally:
            self._answering.discard(task)

    async def stop_work(self) -> None:
        """End the subclass's own work before the server stops (nothing by default)."""

    async def close(self) -> None:
        answers = list(self._answering)
        for task in answers:
            task.cancel()
        await asyncio.gather(*answers, return_exceptions=True)
        await self.stop_work()
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

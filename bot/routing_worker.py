"""Routes signals and explanations into the outbox on a thread of its own, with its own SQLite connection.

SQLite releases the GIL while it works, so routing one signal to ten thousand subscribers (tens of milliseconds
of SQL) runs beside the event loop instead of stalling it, and with it the feed ingesting in the same process.
One thread keeps the order: an explanation is applied after its signal's routing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from bot.database import open_database
from bot.models import Destination
from bot.outbox import Outbox
from bot.router import AlertRouter
from bot.subscriptions import Subscriptions
from engine.events import Signal

T = TypeVar("T")


class RoutingWorker:
    """An AlertRouter that lives on the "alert-routing" thread; `on_queued` runs on the event loop after work
    that queued or changed rows."""

    def __init__(
        self, db_path: Path, merge_window_s: float, static: Iterable[Destination], on_queued: Callable[[], None]
    ) -> None:
        self.db_path = db_path
        self.merge_window_s = merge_window_s
        self.static = tuple(static)
        self.on_queued = on_queued
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="alert-routing")
        self._router: AlertRouter | None = None

    def _here(self) -> AlertRouter:
        """The thread's router, opened on first use (SQLite connections belong to the thread that made them)."""
        if self._router is None:
            db = open_database(self.db_path)
            db.execute("PRAGMA wal_autocheckpoint=0")  # the bot's checkpointer thread does it
            self._router = AlertRouter(Subscriptions(db), Outbox(db, self.merge_window_s), static=self.static)
        return self._router

    async def _run(self, work: Callable[[AlertRouter], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, lambda: work(self._here()))

    async def signal(self, signal: Signal) -> int:
        """Queue the signal's alert; returns how many destinations it reached (0 if it was already queued)."""
        queued = await self._run(lambda router: router.on_signal(signal))
        if queued:
            self.on_queued()
        return queued

    async def explanation(self, signal_id: str, text: str, provider: str) -> None:
        """Keep the explanation and mark sent alerts holding the signal for an edit."""
        if await self._run(lambda router: router.on_explanation(signal_id, text, provider)):
            self.on_queued()

    def close(self) -> None:
        """Finish queued work, then close the thread's connection."""
        self._executor.submit(self._close_here)
        self._executor.shutdown(wait=True)

    def _close_here(self) -> None:
        if self._router is not None:
            self._router.outbox.db.close()
            self._router = None

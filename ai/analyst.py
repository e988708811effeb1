"""The AI analyst: one grounded explanation per signal, shared by every subscriber, never holding up the engine."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ai.offline import explain_offline
from ai.prompts import explain_messages
from ai.providers import Completer
from ai.snapshot import signal_snapshot
from core.events import Signal
from engine.analysis.context import SymbolContext
from engine.bus import Subscription
from storage.signal_store import SignalStore

log = logging.getLogger(__name__)

OFFLINE = "offline"


@dataclass(frozen=True)
class Explanation:
    signal_id: str
    text: str
    provider: str  # groq | dashscope | openai | offline


class Analyst:
    """Explains signals with bounded concurrency; the result is cached and stored with the signal."""

    def __init__(
        self,
        complete: Completer,
        *,
        contexts: Callable[[str], SymbolContext | None],
        signal_store: SignalStore | None = None,
        concurrency: int = 4,
        track_record: Callable[[Signal], dict[str, Any] | None] = lambda signal: None,
    ) -> None:
        self.complete = complete
        self.track_record = track_record  # the kind's record on the symbol, which explanations may cite
        self.contexts = contexts
        self.signal_store = signal_store
        self._slots = asyncio.Semaphore(concurrency)
        self._cache: dict[str, Explanation] = {}
        self._pending: dict[str, asyncio.Future[Explanation]] = {}

    async def explain(self, signal: Signal) -> Explanation:
        """The signal's explanation: asked once, however many subscribers wait for it."""
        if signal.id in self._cache:
            return self._cache[signal.id]
        if signal.id in self._pending:
            return await asyncio.shield(self._pending[signal.id])
        future: asyncio.Future[Explanation] = asyncio.get_running_loop().create_future()
        self._pending[signal.id] = future
        try:
            async with self._slots:
                explanation = await self._write(signal)
            self._cache[signal.id] = explanation
            if self.signal_store is not None:  # saved first: in a bot process the router may not have yet
                self.signal_store.save(signal)
                self.signal_store.set_explanation(signal.id, explanation.text, explanation.provider)
            future.set_result(explanation)
            return explanation
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, the loop does not warn
            raise
        finally:
            del self._pending[signal.id]

    async def _write(self, signal: Signal) -> Explanation:
        snapshot = signal_snapshot(signal, self.contexts(signal.symbol), self.track_record(signal))

        completion = await self.complete("explain", explain_messages(snapshot), snapshot, "")
        if completion is None:
            return Explanation(signal.id, explain_offline(snapshot), OFFLINE)
        return Explanation(signal.id, completion.text, completion.provider)


async def explain_from_bus(
    analyst: Analyst, signals: Subscription, on_explained: Callable[[Signal, Explanation], Awaitable[None]]
) -> None:
    """Explain each signal from the bus in its own task (bounded by the analyst): the engine never waits."""
    running: set[asyncio.Task[None]] = set()

    async def explain(signal: Signal) -> None:
        try:
            await on_explained(signal, await analyst.explain(signal))
        except Exception:  # one signal's failure must not stop the others
            log.exception("explaining %s failed", signal.id)

    try:
        async for event in signals:
            if isinstance(event, Signal):
                task = asyncio.create_task(explain(event), name=f"explain-{event.id}")
                running.add(task)
                task.add_done_callback(running.discard)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

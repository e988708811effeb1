"""Model calls in a process of their own, so that SDK and HTTP work never takes the engine's CPU.

The engine's process builds the messages and the facts (cheap) and sends them over a pipe; the worker runs
the provider chain and the acceptance check on its own event loop, many calls at once, and sends back the
text and the provider that wrote it (or None, and the caller's offline text answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from ai.config import AIConfig
from ai.providers import Attempt, Completion, Messages, ProviderChain, providers_from
from core.logs import configure_logging

ATTEMPTS = 0  # the job number of a message that reports attempts rather than answering a job (jobs count from 1)


def _serve(connection: Connection, config: AIConfig) -> None:
    """The worker process: answer jobs from the pipe until it closes."""
    configure_logging(config.logging)  # who answered, how fast, why others were skipped; keys masked

    def report(attempts: list[Attempt]) -> None:
        connection.send((ATTEMPTS, [(a.provider, a.outcome, a.seconds) for a in attempts]))

    chain = ProviderChain(providers_from(config), timeout=config.timeout, on_attempts=report)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        closed = asyncio.Event()
        running: set[asyncio.Task[None]] = set()

        async def answer(job: int, kind: str, messages: Messages, facts: Any, question: str) -> None:
            completion = await chain.answer(kind, messages, facts, question)
            result = None if completion is None else (completion.text, completion.provider, completion.model,
                                                      completion.seconds)
            connection.send((job, result))

        def on_job() -> None:
            try:
                job = connection.recv()
            except (EOFError, OSError):
                loop.remove_reader(connection.fileno())
                closed.set()
                return
            task = asyncio.create_task(answer(*job))
            running.add(task)
            task.add_done_callback(running.discard)

        loop.add_reader(connection.fileno(), on_job)
        await closed.wait()
        for task in running:
            task.cancel()

    asyncio.run(main())


class ModelWorker:
    """A Completer whose calls run in a worker process; `on_attempts` sees each call's attempts (metrics)."""

    def __init__(self, config: AIConfig, on_attempts: Callable[[list[Attempt]], None] | None = None) -> None:
        self.config = config
        self.on_attempts = on_attempts
        self._connection: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._jobs = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[tuple[str, str, str, float] | None]] = {}

    async def start(self) -> None:
        ours, theirs = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(theirs, self.config), name="flowbot-model-worker", daemon=True
        )
        self._process.start()
        theirs.close()
        self._connection = ours
        asyncio.get_running_loop().add_reader(ours.fileno(), self._on_result)

    def _on_result(self) -> None:
        assert self._connection is not None
        try:
            job, result = self._connection.recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(self._connection.fileno())
            for waiting in self._waiting.values():
                if not waiting.done():
                    waiting.set_result(None)  # the worker is gone: the offline text answers
            return
        if job == ATTEMPTS:
            if self.on_attempts is not None:
                self.on_attempts([Attempt(*attempt) for attempt in result])
            return
        future = self._waiting.pop(job) if job in self._waiting else None
        if future is not None and not future.done():
            future.set_result(result)

    async def answer(self, kind: str, messages: Messages, facts: Any, question: str) -> Completion | None:
        """Same contract as ProviderChain.answer."""
        if self._connection is None:
            await self.start()
        assert self._connection is not None
        job = next(self._jobs)
        future = asyncio.get_running_loop().create_future()
        self._waiting[job] = future
        self._connection.send((job, kind, messages, facts, question))
        result = await future
        if result is None:
            return None
        text, provider, model, seconds = result
        return Completion(text, provider, model, seconds)

    async def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError, ValueError):
                asyncio.get_running_loop().remove_reader(self._connection.fileno())
            self._connection.close()
            self._connection = None
        if self._process is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._process.join, 5)
            if self._process.is_alive():
                self._process.kill()
            self._process = None


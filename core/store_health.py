"""Store health: whether each store (the feature store, the signal table) can write now, and why not.

A store reports a failed write (its rows stay in memory and are retried) and a write that worked again; /readyz
turns 503 while any store is failing, and the engine publishes each change as a StoreHealthChanged event.
A store holding more unwritten rows than it may keeps the reason in `stalled`: the process stops with it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StoreProblem:
    """Why a store cannot write, since when (unix seconds), and how many rows wait in memory."""

    reason: str
    since: float
    pending: int


class StoreStalled(OSError):
    """A store could not write for so long that the rows it holds reached their bound: a clear stop."""


class StoreHealth:
    """Problems by store name; written from any thread (a store's writer thread too), read by probes."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._problems: dict[str, StoreProblem] = {}
        self._stalled: str | None = None

    def failed(self, store: str, reason: str, pending: int) -> None:
        """A write of `store` failed; its `pending` rows are kept for a retry."""
        with self._lock:
            known = self._problems.get(store)
            self._problems[store] = StoreProblem(reason, known.since if known else self._clock(), pending)

    def recovered(self, store: str) -> None:
        """A write of `store` worked: everything it held is written."""
        with self._lock:
            self._problems.pop(store, None)

    def stall(self, reason: str) -> None:
        """A store's unwritten rows reached their bound: the process must stop (see `stalled`)."""
        with self._lock:
            self._stalled = self._stalled or reason

    @property
    def stalled(self) -> str | None:
        return self._stalled

    def problems(self) -> dict[str, StoreProblem]:
        """The failing stores now."""
        with self._lock:
            return dict(self._problems)


def unwritable(reason: str, exc: BaseException) -> str:
    """A one-line reason for a failed write: what failed and the error (never a traceback)."""
    detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"{reason}: {detail}"

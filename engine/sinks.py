"""What the engine writes to, declared here and implemented by storage/: the engine never imports storage."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from core.events import Signal
from core.features import WindowFeatures
from engine.analysis.window_batch import WindowBatch


class FeatureSink(Protocol):
    """Where closed windows go (the feature store)."""

    def add(self, features: WindowFeatures, revision: int = 0) -> None: ...

    def add_batch(self, batch: WindowBatch) -> None: ...

    def flush(self) -> int: ...


class SignalSink(Protocol):
    """Where signals go (the signal table): saved in one transaction per batch, once each."""

    def transaction(self) -> AbstractContextManager[None]: ...

    def save_many(self, signals: Sequence[Signal]) -> list[bool]: ...

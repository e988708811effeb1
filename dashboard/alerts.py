"""The signals feed as the dashboard lists it: each signal with its explanation, provider and deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.outbox import Outbox
from core.events import Signal
from storage.signal_store import SignalStore


@dataclass(frozen=True)
class AlertRow:
    signal: Signal
    explanation: str | None
    provider: str | None
    delivered: int  # destinations that received it


class AlertFeed:
    """Reads the signal table and the bots' outbox in DATA_DIR/flowbot.db (the outbox may not exist yet)."""

    def __init__(self, path: Path) -> None:
        self.signals = SignalStore(path)
        self.outbox = Outbox(self.signals.db, merge_window_s=0)

    def recent(
        self, symbol: str | None = None, kind: str | None = None, min_severity: int = 1, limit: int = 100
    ) -> list[AlertRow]:
        """Newest first."""
        return [self.row(s) for s in self.signals.recent(symbol, kind, min_severity, limit=limit)]

    def row(self, signal: Signal) -> AlertRow:
        explained = self.signals.explanation(signal.id)
        text, provider = explained if explained is not None else (None, None)
        return AlertRow(signal, text, provider, self._delivered(signal.id))

    def _delivered(self, signal_id: str) -> int:
        if not self.signals.db["outbox_signals"].exists():
            return 0
        return self.outbox.delivered_count(signal_id)

    def close(self) -> None:
        self.signals.close()

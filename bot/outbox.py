"""The outbox: each alert to each destination is a row, sent once and marked with the platform's message id.

Rows survive restarts: what was not sent is sent after one, and a sent row is never sent again. Signals of
one symbol within the merge window (market time) join one row: before it is sent they are simply part of
it, after it is sent the message is edited. An explanation arriving later marks sent rows for an edit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import sqlite_utils

from bot.models import Destination, Message
from core.events import Direction, Signal, SignalKind

ROUTE_CHUNK = 250  # destinations per routing transaction: a few milliseconds of SQLite

PENDING, SENDING, SENT, FAILED, GONE, UNCONFIRMED = "pending", "sending", "sent", "failed", "gone", "unconfirmed"


@dataclass(frozen=True)
class OutboxRow:
    id: int
    destination: Destination
    kind: str  # alert | digest | notice | broadcast
    symbol: str | None
    language: str
    message: Message | None  # set for everything but alerts, which are rendered from their signals
    sent_text: str | None  # the text of the first attempt (a retry repeats it) or of the last edit
    state: str
    message_id: str | None
    attempts: int
    needs_edit: bool
    silent: bool


@dataclass(frozen=True)
class AlertItem:
    signal: Signal
    explanation: str | None
    provider: str | None
    record: dict[str, Any] | None = None  # the kind's track record on the symbol when it was routed


def message_json(message: Message) -> str:
    return orjson.dumps({"title": message.title, "body": message.body, "direction": message.direction}).decode()


def _message(text: str | None) -> Message | None:
    if not text:
        return None
    data = orjson.loads(text)
    return Message(data["title"], data["body"], direction=data.get("direction"))


def signal_json(signal: Signal) -> str:
    return orjson.dumps({
        "id": signal.id, "symbol": signal.symbol, "kind": signal.kind, "direction": signal.direction,
        "severity": signal.severity, "window_start": signal.window_start, "window_end": signal.window_end,
        "evidence": signal.evidence, "created_at": signal.created_at,
    }).decode()


def _row(row: dict) -> OutboxRow:
    return OutboxRow(
        id=row["id"], destination=Destination(row["platform"], row["chat_id"], row["thread_id"]), kind=row["kind"],
        symbol=row["symbol"], language=row["language"] or "en", message=_message(row["message"]),
        sent_text=row["sent_text"], state=row["state"], message_id=row["message_id"], attempts=row["attempts"],
        needs_edit=bool(row["needs_edit"]), silent=bool(row["silent"]),
    )


class Outbox:
    """Queue and ledger of every message to every destination."""

    def __init__(self, db: sqlite_utils.Database, merge_window_s: float, clock: Callable[[], float] = time.time):
        self.db = db
        self.merge_window_ms = int(merge_window_s * 1000)
        self.clock = clock

    def collect_routes(
        self,
        signal: Signal,
        query: tuple[str, dict[str, object]],
        extra: Iterable[tuple[Destination, bool, str]] = (),
    ) -> list[tuple[int, int]]:
        """Gather the signal's routes: each (platform, chat_id, thread_id, silent, language) that `query` selects
        and each (destination, silent, language) of `extra`, less those that already have the signal (a signal
        delivered twice is alerted once). Returns their chunks, to pass to `route_chunk` one by one: each is one
        short transaction of set-based SQL (thousands of subscribers cost a few statements, not a loop of them).
        The routes live in this connection's temp table until the next call."""
        if not self._collect_routes(signal, query, extra):
            return []
        first, last = self.db.execute("SELECT min(rowid), max(rowid) FROM temp.routes").fetchone()
        return [(low, min(last, low + ROUTE_CHUNK - 1)) for low in range(first, last + 1, ROUTE_CHUNK)]

    def _collect_routes(
        self, signal: Signal, query: tuple[str, dict[str, object]], extra: Iterable[tuple[Destination, bool, str]]
    ) -> int:
        """Fill the connection's temp.routes with the destinations that do not have the signal yet."""
        rows = [(d.platform, d.chat_id, d.thread_id, int(silent), language) for d, silent, language in extra]
        select, params = query
        execute = self.db.execute
        with self.db.conn:
            execute("CREATE TEMP TABLE IF NOT EXISTS routes (platform TEXT, chat_id TEXT, thread_id INTEGER,"
                    " silent INTEGER, language TEXT, outbox_id INTEGER)")
            execute("DELETE FROM temp.routes")
            execute(f"INSERT INTO temp.routes (platform, chat_id, thread_id, silent, language) {select}", params)
            self.db.conn.executemany(
                "INSERT INTO temp.routes (platform, chat_id, thread_id, silent, language) VALUES (?, ?, ?, ?, ?)", rows
            )
            execute(
                "DELETE FROM temp.routes WHERE EXISTS (SELECT 1 FROM outbox_signals s"
                " WHERE s.platform = routes.platform AND s.chat_id = routes.chat_id"
                " AND s.thread_id = routes.thread_id AND s.signal_id = ?)", [signal.id],
            )
            return execute("SELECT count(*) FROM temp.routes").fetchone()[0]

    def route_chunk(self, signal: Signal, low: int, high: int, record: dict[str, Any] | None = None) -> int:
        """Merge the signal (and the track record it carries) into, or open, the alert rows of one chunk of routes;
        returns how many it reached."""
        execute = self.db.execute
        chunk = "routes.rowid BETWEEN ? AND ?"
        with self.db.conn:
            execute("INSERT OR IGNORE INTO alert_signals (signal_id, signal, record) VALUES (?, ?, ?)",
                    [signal.id, signal_json(signal), None if record is None else orjson.dumps(record).decode()])
            execute(
                "UPDATE temp.routes SET outbox_id = (SELECT o.id FROM outbox o WHERE o.platform = routes.platform"
                " AND o.chat_id = routes.chat_id AND o.thread_id = routes.thread_id AND o.kind = 'alert'"
                " AND o.symbol = ? AND o.merge_until > ? AND o.state IN ('pending', 'sending', 'sent')"
                f" ORDER BY o.id DESC LIMIT 1) WHERE {chunk}",
                [signal.symbol, signal.window_start, low, high],
            )
            execute("UPDATE outbox SET needs_edit = 1 WHERE state = 'sent' AND id IN"
                    f" (SELECT outbox_id FROM temp.routes WHERE outbox_id IS NOT NULL AND {chunk})", [low, high])
            key = f"alert:{signal.id}"
            execute(
                "INSERT INTO outbox (platform, chat_id, thread_id, key, kind, symbol, merge_until, language, silent,"
                " state, attempts, next_attempt_at, needs_edit, created_at) SELECT platform, chat_id, thread_id, ?,"
                " 'alert', ?, ?, language, silent, 'pending', 0, 0, 0, ? FROM temp.routes"
                f" WHERE outbox_id IS NULL AND {chunk}",
                [key, signal.symbol, signal.window_start + self.merge_window_ms, self.clock(), low, high],
            )
            execute(
                "UPDATE temp.routes SET outbox_id = (SELECT o.id FROM outbox o WHERE o.platform = routes.platform"
                " AND o.chat_id = routes.chat_id AND o.thread_id = routes.thread_id AND o.key = ?)"
                f" WHERE outbox_id IS NULL AND {chunk}", [key, low, high],
            )
            return execute(
                "INSERT INTO outbox_signals (outbox_id, signal_id, platform, chat_id, thread_id)"
                f" SELECT outbox_id, ?, platform, chat_id, thread_id FROM temp.routes WHERE {chunk}",
                [signal.id, low, high],
            ).rowcount

    def add_message(self, destination: Destination, key: str, kind: str, message: Message) -> bool:
        """Queue a digest, notice or broadcast once per (destination, key); False if it was already queued."""
        with self.db.conn:
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO outbox (platform, chat_id, thread_id, key, kind, message, language, silent,"
                " state, attempts, next_attempt_at, needs_edit, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'en', ?, 'pending', 0, 0, 0, ?)",
                [destination.platform, destination.chat_id, destination.thread_id, key, kind,
                 message_json(message), int(message.silent), self.clock()],
            )
        return cursor.rowcount == 1

    def add_messages(self, messages: Iterable[tuple[Destination, str, str, Message]]) -> int:
        """`add_message` for many (destination, key, kind, message) in one transaction; returns how many are new."""
        with self.db.conn:
            return self.insert_messages(messages)

    def insert_messages(self, messages: Iterable[tuple[Destination, str, str, Message]]) -> int:
        """`add_messages` inside the caller's transaction (with the caller's other writes, committed together)."""
        now = self.clock()
        return self.db.conn.executemany(
            "INSERT OR IGNORE INTO outbox (platform, chat_id, thread_id, key, kind, message, language, silent,"
            " state, attempts, next_attempt_at, needs_edit, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 'en', ?, 'pending', 0, 0, 0, ?)",
            [(d.platform, d.chat_id, d.thread_id, key, kind, message_json(message), int(message.silent), now)
             for d, key, kind, message in messages],
        ).rowcount

    def add_explanation(self, signal_id: str, text: str, provider: str) -> int:
        """Keep the explanation for rendering and mark sent rows holding the signal for an edit."""
        with self.db.conn:
            self.db.execute(
                "INSERT OR REPLACE INTO alert_explanations (signal_id, text, provider) VALUES (?, ?, ?)",
                [signal_id, text, provider],
            )
            cursor = self.db.execute(
                "UPDATE outbox SET needs_edit = 1 WHERE state = 'sent' AND id IN"
                " (SELECT outbox_id FROM outbox_signals WHERE signal_id = ?)", [signal_id],
            )
        return cursor.rowcount

    def due(self, platform: str, now: float, limit: int) -> list[OutboxRow]:
        """Rows to work on now: unsent ones due for a try, then sent ones waiting for an edit, oldest first."""
        rows = list(self.db.query(
            "SELECT * FROM outbox WHERE platform = ? AND state = 'pending' AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at, id LIMIT ?", [platform, now, limit],
        ))
        if len(rows) < limit:
            rows += self.db.query(
                "SELECT * FROM outbox WHERE platform = ? AND needs_edit = 1 AND state = 'sent'"
                " AND next_attempt_at <= ? ORDER BY id LIMIT ?", [platform, now, limit - len(rows)],
            )
        return [_row(row) for row in rows]

    def next_due_at(self, platform: str) -> float | None:
        """When the earliest waiting row becomes due (None when nothing waits)."""
        sends = self.db.execute(
            "SELECT min(next_attempt_at) FROM outbox WHERE platform = ? AND state = 'pending'", [platform]
        ).fetchone()[0]
        edits = self.db.execute(
            "SELECT min(next_attempt_at) FROM outbox WHERE platform = ? AND needs_edit = 1 AND state = 'sent'",
            [platform],
        ).fetchone()[0]
        known = [at for at in (sends, edits) if at is not None]
        return min(known) if known else None

    def item_keys(self, outbox_id: int) -> tuple[tuple[str, str | None], ...]:
        """(signal id, explanation provider or None) of an alert row: what its rendering depends on."""
        return tuple(self.db.execute(
            "SELECT s.signal_id, e.provider FROM outbox_signals s LEFT JOIN alert_explanations e"
            " ON e.signal_id = s.signal_id WHERE s.outbox_id = ? ORDER BY s.signal_id", [outbox_id],
        ).fetchall())

    def items(self, outbox_id: int) -> list[AlertItem]:
        """The signals of an alert row with their explanations, oldest window first."""
        rows = self.db.execute(
            "SELECT a.signal, e.text, e.provider, a.record FROM outbox_signals s"
            " JOIN alert_signals a ON a.signal_id = s.signal_id"
            " LEFT JOIN alert_explanations e ON e.signal_id = s.signal_id WHERE s.outbox_id = ?", [outbox_id],
        ).fetchall()
        items = [AlertItem(_signal(orjson.loads(signal)), text, provider, orjson.loads(record) if record else None)
                 for signal, text, provider, record in rows]
        return sorted(items, key=lambda item: (item.signal.window_start, item.signal.id))

    def sent(self, outbox_id: int, message_id: str, text: str) -> None:
        """Delivered: the platform's message id and the text it shows."""
        with self.db.conn:
            self.db.execute(
                "UPDATE outbox SET state = 'sent', message_id = ?, sent_text = ?, sent_at = ?, next_attempt_at = 0,"
                " attempts = attempts + 1, last_error = NULL WHERE id = ?", [message_id, text, self.clock(), outbox_id],
            )

    def sending(self, outbox_id: int) -> None:
        """Mark a row as on the wire before sending it: a crash now must not make it go out twice."""
        with self.db.conn:
            self.db.execute("UPDATE outbox SET state = 'sending' WHERE id = ?", [outbox_id])

    def recover(self) -> int:
        """After a crash: rows that were on the wire may or may not have arrived; they are kept as
        'unconfirmed' and not sent again (no duplicates). Returns how many."""
        with self.db.conn:
            return self.db.execute("UPDATE outbox SET state = 'unconfirmed' WHERE state = 'sending'").rowcount

    def edited(self, outbox_id: int, text: str) -> None:
        with self.db.conn:
            self.db.execute(
                "UPDATE outbox SET sent_text = ?, needs_edit = 0, last_error = NULL WHERE id = ?", [text, outbox_id]
            )

    def mark_edit(self, outbox_id: int) -> None:
        with self.db.conn:
            self.db.execute("UPDATE outbox SET needs_edit = 1 WHERE id = ?", [outbox_id])

    def retry(self, outbox_id: int, at: float, error: str, *, text: str | None = None, edit: bool = False) -> None:
        """Try again at `at`; a failed send freezes its text so that the retry carries the same (an edit: mark it)."""
        with self.db.conn:
            self.db.execute(
                "UPDATE outbox SET state = CASE state WHEN 'sending' THEN 'pending' ELSE state END,"
                " next_attempt_at = ?, last_error = ?, needs_edit = max(needs_edit, ?),"
                " attempts = attempts + 1, sent_text = coalesce(sent_text, ?) WHERE id = ?",
                [at, error, int(edit), text, outbox_id],
            )

    def failed(self, outbox_id: int, error: str) -> None:
        with self.db.conn:
            self.db.execute(
                "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ? WHERE id = ?",
                [error, outbox_id],
            )

    def gone(self, destination: Destination, error: str) -> int:
        """Stop every unsent row to a destination that no longer takes messages; returns rows stopped."""
        with self.db.conn:
            cursor = self.db.execute(
                "UPDATE outbox SET state = 'gone', last_error = ? WHERE platform = ? AND chat_id = ? AND thread_id = ?"
                " AND state = 'pending'", [error, destination.platform, destination.chat_id, destination.thread_id],
            )
        return cursor.rowcount

    def prune(self, before: float) -> int:
        """Remove finished rows (sent, failed, gone) created before `before`; returns how many."""
        with self.db.conn:
            self.db.execute(
                "DELETE FROM outbox_signals WHERE outbox_id IN (SELECT id FROM outbox WHERE created_at < ?"
                " AND state NOT IN ('pending', 'sending') AND needs_edit = 0)", [before],
            )
            cursor = self.db.execute(
                "DELETE FROM outbox WHERE created_at < ? AND state NOT IN ('pending', 'sending') AND needs_edit = 0",
                [before],
            )
            self.db.execute(
                "DELETE FROM alert_signals WHERE signal_id NOT IN (SELECT signal_id FROM outbox_signals)"
            )
            self.db.execute(
                "DELETE FROM alert_explanations WHERE signal_id NOT IN (SELECT signal_id FROM outbox_signals)"
            )
        return cursor.rowcount

    def depth(self) -> dict[str, int]:
        """Unsent rows per platform."""
        rows = self.db.execute("SELECT platform, count(*) FROM outbox WHERE state = 'pending' GROUP BY platform")
        return dict(rows.fetchall())

    def counts(self) -> dict[str, int]:
        """Rows per state, for /admin and the benchmark."""
        return dict(self.db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())

    def delivered_count(self, signal_id: str) -> int:
        """How many destinations have received this signal."""
        return self.db.execute(
            "SELECT count(*) FROM outbox_signals s JOIN outbox o ON o.id = s.outbox_id"
            " WHERE s.signal_id = ? AND o.state = 'sent'", [signal_id],
        ).fetchone()[0]


def _signal(data: dict) -> Signal:
    return Signal(**{**data, "kind": SignalKind(data["kind"]), "direction": Direction(data["direction"])})

"""The bot's tables in `DATA_DIR/flowbot.db` (sqlite-utils), created and upgraded by numbered migrations."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import sqlite_utils
from sqlite_utils.db import Table

MIGRATIONS_TABLE = "bot_migrations"
BUSY_TIMEOUT_S = 0.25  # the event loop's longest wait for the write lock (another process may hold it for long)


def _chats_and_subscriptions(db: sqlite_utils.Database) -> None:
    Table(db, "chats").create(
        {
            "platform": str, "chat_id": str, "thread_id": int, "guild_id": str, "channel_id": str,
            "is_private": int, "language": str, "min_severity": int, "kind_modes": str,
            "quiet_start": int, "quiet_end": int, "digest_hour": int, "active": int,
            "deactivated_reason": str, "created_at": float,
        },
        pk=("platform", "chat_id", "thread_id"),
        defaults={"language": "en", "min_severity": 1, "kind_modes": "{}", "active": 1, "is_private": 1},
        not_null={"platform", "chat_id", "thread_id"},
    )
    Table(db, "subscriptions").create(
        {"platform": str, "chat_id": str, "thread_id": int, "symbol": str, "kinds": str, "created_at": float},
        pk=("platform", "chat_id", "thread_id", "symbol"),
        not_null={"platform", "chat_id", "thread_id", "symbol"},
    )
    Table(db, "subscriptions").create_index(["symbol"])


def _outbox(db: sqlite_utils.Database) -> None:
    Table(db, "outbox").create(
        {
            "id": int, "platform": str, "chat_id": str, "thread_id": int, "key": str, "kind": str,
            "symbol": str, "merge_until": float, "language": str, "message": str, "sent_text": str, "silent": int,
            "state": str, "message_id": str, "attempts": int, "next_attempt_at": float, "needs_edit": int,
            "last_error": str, "created_at": float, "sent_at": float,
        },
        pk="id",
        defaults={"state": "pending", "attempts": 0, "next_attempt_at": 0.0, "needs_edit": 0, "silent": 0},
        not_null={"platform", "chat_id", "thread_id", "key", "kind", "state"},
    )
    Table(db, "outbox").create_index(["platform", "chat_id", "thread_id", "key"], unique=True)
    Table(db, "outbox").create_index(["platform", "state", "next_attempt_at"])
    Table(db, "outbox").create_index(["platform", "needs_edit", "next_attempt_at"])
    Table(db, "alert_signals").create({"signal_id": str, "signal": str}, pk="signal_id")
    Table(db, "outbox_signals").create(
        {"outbox_id": int, "signal_id": str, "platform": str, "chat_id": str, "thread_id": int},
        pk=("outbox_id", "signal_id"),
        foreign_keys=[("outbox_id", "outbox", "id")],
    )
    Table(db, "outbox_signals").create_index(["platform", "chat_id", "thread_id", "signal_id"], unique=True)
    Table(db, "outbox_signals").create_index(["signal_id"])
    Table(db, "alert_explanations").create({"signal_id": str, "text": str, "provider": str}, pk="signal_id")


def _rules(db: sqlite_utils.Database) -> None:
    Table(db, "rules").create(
        {
            "id": int, "platform": str, "chat_id": str, "thread_id": int, "guild_id": str, "user_id": str,
            "symbol": str, "metric": str, "span": str, "op": str, "threshold": str, "suffix": str, "state": str,
            "created_at": float, "fired_count": int, "last_fired_ms": int, "last_value": str,
        },
        pk="id",
        defaults={"state": "active", "fired_count": 0, "suffix": ""},
        not_null={"platform", "chat_id", "thread_id", "symbol", "metric", "op", "threshold", "state"},
    )
    Table(db, "rules").create_index(["platform", "chat_id", "thread_id"])


def _rule_levels(db: sqlite_utils.Database) -> None:
    Table(db, "rule_levels").create(
        {"symbol": str, "measure": str, "last": str, "at_ms": int}, pk=("symbol", "measure"),
        not_null={"symbol", "measure", "last"},
    )


def _alert_records(db: sqlite_utils.Database) -> None:
    Table(db, "alert_signals").add_column("record", str)  # the track record the alert carries (JSON)


def _positive_only(db: sqlite_utils.Database) -> None:
    Table(db, "chats").add_column("positive_only", int, not_null_default=0)  # /settings positive on|off


MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("chats and subscriptions", _chats_and_subscriptions),
    ("outbox", _outbox),
    ("alert rules", _rules),
    ("alert rules' last judged values", _rule_levels),
    ("alerts' track records", _alert_records),
    ("only kinds with a positive record", _positive_only),
]


def open_database(path: str | Path, busy_timeout: float = BUSY_TIMEOUT_S) -> sqlite_utils.Database:
    """The database at `path`, in WAL mode, with every migration applied (each once, in order); then a write waits
    at most `busy_timeout` for the lock and raises sqlite3.OperationalError (callers retry later)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite_utils.Database(path)
    db.enable_wal()
    db.execute("PRAGMA synchronous=NORMAL")
    migrate(db)
    db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    return db


def migrate(db: sqlite_utils.Database) -> list[int]:
    """Apply the migrations this database has not had yet; returns their numbers."""
    applied_table = Table(db, MIGRATIONS_TABLE)
    if not applied_table.exists():
        applied_table.create({"version": int, "name": str, "applied_at": float}, pk="version")
    done = {row["version"] for row in applied_table.rows}
    applied = []
    for version, (name, step) in enumerate(MIGRATIONS, start=1):
        if version in done:
            continue
        with db.conn:
            step(db)
            applied_table.insert({"version": version, "name": name, "applied_at": time.time()})
        applied.append(version)
    return applied


class WalCheckpointer:
    """Copies the write-ahead log into the database file from a thread of its own, every `interval` seconds,
    so that no commit on the event loop pays for a large checkpoint (the main connection turns its own off)."""

    def __init__(self, path: str | Path, interval: float = 1.0) -> None:
        self.path = Path(path)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, timeout=30)
        try:
            while not self._stop.wait(self.interval):
                with contextlib.suppress(sqlite3.Error):  # the disk full or read-only for a while: the next round
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            with contextlib.suppress(sqlite3.Error):
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()

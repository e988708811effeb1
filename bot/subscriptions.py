"""Subscribers, their symbols and their alert settings, stored in the bot's SQLite tables."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson
import sqlite_utils
from sqlite_utils.db import Table

from bot.models import Destination
from core.events import Signal
from engine.signals.registry import kind_names

SIGNAL_KINDS: tuple[str, ...] = kind_names()
KIND_MODES = ("on", "silent", "off")
LANGUAGES = ("en", "pt")


@dataclass
class ChatSettings:
    """A subscriber's choices: minimum severity, each kind on/silent/off, quiet hours, language, digest hour."""

    language: str = "en"
    min_severity: int = 1
    kind_modes: dict[str, str] = field(default_factory=dict)
    quiet_start: int | None = None  # UTC hour, quiet from its start ...
    quiet_end: int | None = None  # ... to the start of this hour
    digest_hour: int | None = None  # UTC hour of the daily digest; None = no digest
    positive_only: bool = False  # only kinds with a positive track record on the symbol

    def mode(self, kind: str) -> str:
        return self.kind_modes.get(kind, "on")


@dataclass(frozen=True)
class Subscriber:
    """One chat (or Discord server) that subscribed, with where its alerts go."""

    key: Destination  # platform, chat (Discord: the server) and topic
    delivery: Destination  # where alerts are sent (Discord: the server's alert channel)
    settings: ChatSettings
    kinds: tuple[str, ...] = ()  # kinds chosen with /subscribe; empty = all


def _settings(row: dict) -> ChatSettings:
    return ChatSettings(
        language=row["language"] or "en", min_severity=row["min_severity"] or 1,
        kind_modes=orjson.loads(row["kind_modes"] or "{}"), quiet_start=row["quiet_start"],
        quiet_end=row["quiet_end"], digest_hour=row["digest_hour"], positive_only=bool(row.get("positive_only")),
    )


def _key(row: dict) -> Destination:
    return Destination(row["platform"], row["chat_id"], row["thread_id"])


def _delivery(row: dict) -> Destination:
    return Destination(row["platform"], row["channel_id"] or row["chat_id"], row["thread_id"])


class Subscriptions:
    """Reads and changes the `chats` and `subscriptions` tables."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self.settings_version = 0  # changes whenever a chat's settings may have: readers' caches stale

    def _row(self, key: Destination) -> dict | None:
        """The chat's row (a plain query: asked for every alert and rule firing, it must stay cheap)."""
        cursor = self.db.execute(
            "SELECT * FROM chats WHERE platform = ? AND chat_id = ? AND thread_id = ? LIMIT 1",
            [key.platform, key.chat_id, key.thread_id],
        )
        row = cursor.fetchone()
        return None if row is None else dict(zip([column[0] for column in cursor.description], row, strict=True))

    def ensure_chat(self, key: Destination, *, is_private: bool, channel_id: str | None = None) -> ChatSettings:
        """The chat's settings, creating its row (or re-activating it) on first contact."""
        row = self._row(key)
        self.settings_version += 1
        with self.db.conn:
            if row is None:
                Table(self.db, "chats").insert({
                    "platform": key.platform, "chat_id": key.chat_id, "thread_id": key.thread_id,
                    "channel_id": channel_id, "is_private": int(is_private), "language": "en", "min_severity": 1,
                    "kind_modes": "{}", "active": 1, "created_at": time.time(),
                })
                return ChatSettings()
            if not row["active"]:
                Table(self.db, "chats").update((key.platform, key.chat_id, key.thread_id),
                                        {"active": 1, "deactivated_reason": None})
            if channel_id is not None and not row["channel_id"]:
                Table(self.db, "chats").update((key.platform, key.chat_id, key.thread_id), {"channel_id": channel_id})
        return _settings(row)

    def settings(self, key: Destination) -> ChatSettings:
        row = self._row(key)
        return ChatSettings() if row is None else _settings(row)

    def save_settings(self, key: Destination, settings: ChatSettings) -> None:
        self.settings_version += 1
        with self.db.conn:
            Table(self.db, "chats").update((key.platform, key.chat_id, key.thread_id), {
                "language": settings.language, "min_severity": settings.min_severity,
                "kind_modes": orjson.dumps(settings.kind_modes).decode(), "quiet_start": settings.quiet_start,
                "quiet_end": settings.quiet_end, "digest_hour": settings.digest_hour,
                "positive_only": int(settings.positive_only),
            })

    def alert_channel(self, key: Destination) -> str | None:
        row = self._row(key)
        return None if row is None else row["channel_id"]

    def set_alert_channel(self, key: Destination, channel_id: str) -> None:
        with self.db.conn:
            Table(self.db, "chats").update((key.platform, key.chat_id, key.thread_id), {"channel_id": channel_id})

    def subscribe(self, key: Destination, symbols: Iterable[str], kinds: Iterable[str] = ()) -> None:
        kinds_text = ",".join(kinds)
        now = time.time()
        with self.db.conn:
            Table(self.db, "subscriptions").upsert_all(
                [{"platform": key.platform, "chat_id": key.chat_id, "thread_id": key.thread_id, "symbol": symbol,
                  "kinds": kinds_text, "created_at": now} for symbol in symbols],
                pk=("platform", "chat_id", "thread_id", "symbol"),
            )

    def unsubscribe(self, key: Destination, symbols: Iterable[str]) -> list[str]:
        """Remove these symbols; returns those that were subscribed."""
        held = dict(self.symbols(key))
        removed = [s for s in symbols if s in held]
        with self.db.conn:
            for symbol in removed:
                Table(self.db, "subscriptions").delete((key.platform, key.chat_id, key.thread_id, symbol))
        return removed

    def symbols(self, key: Destination) -> list[tuple[str, tuple[str, ...]]]:
        """(symbol, kinds) of the chat's subscriptions, by symbol."""
        rows = Table(self.db, "subscriptions").rows_where(
            "platform = ? AND chat_id = ? AND thread_id = ?", [key.platform, key.chat_id, key.thread_id],
            order_by="symbol",
        )
        return [(row["symbol"], tuple(k for k in (row["kinds"] or "").split(",") if k)) for row in rows]

    def routes_query(self, signal: Signal, hour_utc: int, positive: bool = False) -> tuple[str, dict[str, object]]:
        """A SELECT of (platform, chat_id, thread_id, silent, language) for the signal's alert: active
        subscribers of its symbol whose settings let it through (in SQL: ten thousand cost milliseconds);
        `positive`: the signal's kind has a positive track record on its symbol (chats may want only those)."""
        mode = "coalesce(json_extract(c.kind_modes, '$.' || :kind), 'on')"
        sql = (
            "SELECT c.platform, coalesce(nullif(c.channel_id, ''), c.chat_id), c.thread_id,"
            f" CASE WHEN {mode} = 'silent' THEN 1"
            " WHEN c.quiet_start IS NULL OR c.quiet_end IS NULL OR c.quiet_start = c.quiet_end THEN 0"
            " WHEN c.quiet_start < c.quiet_end THEN (:hour >= c.quiet_start AND :hour < c.quiet_end)"
            " ELSE (:hour >= c.quiet_start OR :hour < c.quiet_end) END,"
            " coalesce(c.language, 'en')"
            " FROM subscriptions s JOIN chats c"
            " ON c.platform = s.platform AND c.chat_id = s.chat_id AND c.thread_id = s.thread_id"
            " WHERE s.symbol = :symbol AND c.active = 1 AND :severity >= coalesce(c.min_severity, 1)"
            f" AND {mode} != 'off'"
            " AND (coalesce(s.kinds, '') = '' OR instr(',' || s.kinds || ',', ',' || :kind || ',') > 0)"
            " AND (coalesce(c.positive_only, 0) = 0 OR :positive = 1)"
        )
        return sql, {"kind": signal.kind, "hour": hour_utc, "symbol": signal.symbol, "severity": signal.severity,
                     "positive": int(positive)}

    def with_digest_at(self, hour_utc: int) -> list[Subscriber]:
        """Active subscribers whose daily digest is due at this UTC hour."""
        rows = Table(self.db, "chats").rows_where("active = 1 AND digest_hour = ?", [hour_utc])
        return [Subscriber(_key(row), _delivery(row), _settings(row)) for row in rows]

    def deactivate(self, delivery: Destination, reason: str) -> int:
        """Stop alerts to a destination that is gone (blocked bot, deleted channel); returns chats affected."""
        column = "channel_id" if delivery.platform == "discord" else "chat_id"
        with self.db.conn:
            cursor = self.db.execute(
                f"UPDATE chats SET active = 0, deactivated_reason = ? WHERE platform = ? AND {column} = ?"
                " AND thread_id = ? AND active = 1",
                [reason, delivery.platform, delivery.chat_id, delivery.thread_id],
            )
        return cursor.rowcount

    def is_active(self, key: Destination) -> bool:
        row = self._row(key)
        return bool(row and row["active"])

    def admins_reach(self, platform: str, user_ids: Iterable[str]) -> list[Destination]:
        """Private chats of these admin users (Telegram: the private chat id is the user id)."""
        ids = list(user_ids)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = Table(self.db, "chats").rows_where(
            f"platform = ? AND is_private = 1 AND active = 1 AND chat_id IN ({marks})", [platform, *ids]
        )
        return [_delivery(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """Chats, active chats and subscriptions, for /admin."""
        one = self.db.execute
        return {
            "chats": one("SELECT count(*) FROM chats").fetchone()[0],
            "active_chats": one("SELECT count(*) FROM chats WHERE active = 1").fetchone()[0],
            "subscriptions": one("SELECT count(*) FROM subscriptions").fetchone()[0],
        }

    def all_active(self) -> list[tuple[Destination, str]]:
        """Delivery destination and language of every active chat (for /broadcast)."""
        return [(_delivery(row), row["language"] or "en") for row in Table(self.db, "chats").rows_where("active = 1")]

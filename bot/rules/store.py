"""The `rules` table of `DATA_DIR/flowbot.db`: each chat's rules, their state and last firing."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from decimal import Decimal

import sqlite_utils
from sqlite_utils.db import Table

from bot.models import Destination
from bot.rules.grammar import RuleSpec
from bot.rules.metrics import Op

ACTIVE, PAUSED = "active", "paused"


@dataclass(frozen=True, slots=True)
class Rule:
    """A stored rule: where its firings go, whose settings apply (a Discord server's), and its last firing."""

    id: int
    destination: Destination
    settings_key: Destination
    spec: RuleSpec
    state: str
    fired_count: int = 0
    last_fired_ms: int | None = None
    last_value: str | None = None


def _rule(row: dict, destinations: dict[tuple[str, str, int], Destination] | None = None) -> Rule:
    """A row as a Rule; with `destinations`, a chat's rules share one Destination and the words shared by many rules
    are one string each (100,000 rules held 1 KB each without)."""
    shared = destinations if destinations is not None else {}

    def place(platform: str, chat_id: str, thread_id: int) -> Destination:
        key = (platform, chat_id, thread_id)
        found = shared.get(key)
        if found is None:
            found = shared[key] = Destination(sys.intern(platform), chat_id, thread_id)
        return found

    destination = place(row["platform"], row["chat_id"], row["thread_id"])
    guild = row["guild_id"]
    return Rule(
        id=row["id"], destination=destination,
        settings_key=place("discord", guild, 0) if guild else destination,
        spec=RuleSpec(sys.intern(row["symbol"]), sys.intern(row["metric"]), row["span"] and sys.intern(row["span"]),
                      Op(row["op"]), Decimal(row["threshold"]), sys.intern(row["suffix"] or "")),
        state=sys.intern(row["state"]), fired_count=row["fired_count"] or 0, last_fired_ms=row["last_fired_ms"],
        last_value=row["last_value"],
    )


class RuleStore:
    """Reads and changes the `rules` table."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def add(self, destination: Destination, settings_key: Destination, user_id: str, spec: RuleSpec) -> Rule:
        guild = settings_key.chat_id if settings_key != destination else None
        with self.db.conn:
            cursor = self.db.execute(
                "INSERT INTO rules (platform, chat_id, thread_id, guild_id, user_id, symbol, metric, span, op,"
                " threshold, suffix, state, created_at, fired_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                [destination.platform, destination.chat_id, destination.thread_id, guild, user_id, spec.symbol,
                 spec.metric, spec.span, str(spec.op), str(spec.threshold), spec.suffix, ACTIVE, time.time()],
            )
        rule_id = cursor.lastrowid
        assert rule_id is not None
        return Rule(rule_id, destination, settings_key, spec, ACTIVE)

    def of_chat(self, destination: Destination) -> list[Rule]:
        rows = Table(self.db, "rules").rows_where(
            "platform = ? AND chat_id = ? AND thread_id = ?",
            [destination.platform, destination.chat_id, destination.thread_id], order_by="id",
        )
        return [_rule(row) for row in rows]

    def count(self, destination: Destination) -> int:
        return self.db.execute(
            "SELECT count(*) FROM rules WHERE platform = ? AND chat_id = ? AND thread_id = ?",
            [destination.platform, destination.chat_id, destination.thread_id],
        ).fetchone()[0]

    def active(self) -> list[Rule]:
        destinations: dict[tuple[str, str, int], Destination] = {}
        return [_rule(row, destinations)
                for row in Table(self.db, "rules").rows_where("state = ?", [ACTIVE], order_by="id")]

    def get(self, rule_id: int) -> Rule | None:
        rows = list(Table(self.db, "rules").rows_where("id = ?", [rule_id]))
        return _rule(rows[0]) if rows else None

    def set_state(self, rule_id: int, state: str) -> None:
        with self.db.conn:
            self.db.execute("UPDATE rules SET state = ? WHERE id = ?", [state, rule_id])

    def delete(self, rule_id: int) -> None:
        with self.db.conn:
            self.db.execute("DELETE FROM rules WHERE id = ?", [rule_id])

    def fired(self, firings: list[tuple[int, int, str]]) -> None:
        """Count (rule id, ms, value) firings, inside the caller's transaction."""
        self.db.conn.executemany(
            "UPDATE rules SET fired_count = fired_count + 1, last_fired_ms = ?, last_value = ? WHERE id = ?",
            [(at_ms, value, rule_id) for rule_id, at_ms, value in firings],
        )

    def save_levels(self, levels: list[tuple[str, str, str, int]]) -> None:
        """Keep (symbol, measure, last value, ms) of the judged measures, inside the caller's transaction."""
        self.db.conn.executemany(
            "INSERT OR REPLACE INTO rule_levels (symbol, measure, last, at_ms) VALUES (?, ?, ?, ?)", levels,
        )

    def levels(self) -> list[tuple[str, str, str, int]]:
        """The last value of every measure judged before the process stopped."""
        return [tuple(row) for row in self.db.execute("SELECT symbol, measure, last, at_ms FROM rule_levels")]

"""The SQLite signal store: idempotent saves, filtered reads newest first, explanations, evidence round trip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from core.events import Signal
from storage.signal_store import SignalStore

T0 = 1_700_000_000_000


def make(
    symbol: str = "BTCUSDT",
    kind: str = "whale",
    start: int = T0,
    severity: int = 1,
    direction: str = "buy",
    evidence: dict[str, Any] | None = None,
) -> Signal:
    """A signal with the project's id scheme."""
    return Signal(
        id=f"{symbol}-{kind}-{start}", symbol=symbol, kind=kind, direction=direction, severity=severity,
        window_start=start, window_end=start + 5_000, evidence=evidence if evidence is not None else {"whale_count": 1},
        created_at=start / 1000,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SignalStore]:
    s = SignalStore(tmp_path / "data" / "flowbot.db")
    yield s
    s.close()


def test_creates_folders_table_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "flowbot.db"
    store = SignalStore(path)
    assert path.exists() and store.count() == 0
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert set(store.db["signals"].columns_dict) == {
        "id", "symbol", "kind", "direction", "severity", "window_start", "window_end", "evidence", "created_at",
        "explanation", "provider",
    }
    assert store.db["signals"].pks == ["id"]
    store.close()


def test_save_and_get_round_trip_with_evidence(store: SignalStore) -> None:
    evidence = {
        "whale_count": 3, "whale_buy_quote": 1234567.89, "share": 0.812345, "note": "12.50000000",
        "nested": {"a": [1, 2.5, "x"]}, "flag": True, "none": None,
    }
    signal = make(evidence=evidence, direction="sell", severity=2)
    assert store.save(signal) is True
    got = store.get(signal.id)
    assert got == signal
    assert got is not None and got.evidence == evidence and isinstance(got.evidence["whale_count"], int)


def test_get_unknown_is_none(store: SignalStore) -> None:
    assert store.get("nope") is None


def test_save_is_idempotent_and_never_overwrites(store: SignalStore) -> None:
    first = make(severity=1)
    assert store.save(first) is True
    assert store.save(first) is False
    assert store.save(make(severity=3, direction="sell")) is False  # same id, different content
    assert store.count() == 1
    assert store.get(first.id) == first


def test_save_many_keeps_the_first_of_each_id_and_says_which_were_new(tmp_path: Path) -> None:
    store = SignalStore(tmp_path / "flowbot.db", durable=False)
    stored = make(start=T0)
    store.save(stored)
    batch = [make(start=T0, severity=3), make(start=T0 + 5_000), make(start=T0 + 5_000, severity=2),
             *(make(start=T0 + 10_000 + 5_000 * k) for k in range(600))]  # more ids than one lookup takes
    with store.transaction():
        assert store.save_many(batch) == [False, True, False, *[True] * 600]
    assert store.save_many([]) == []
    assert store.count() == 602
    assert store.get(stored.id) == stored and store.get(batch[1].id) == batch[1]
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    store.close()


def test_commit_in_a_transaction_shows_the_saves_so_far_to_readers(tmp_path: Path) -> None:
    store, reader = SignalStore(tmp_path / "flowbot.db", durable=False), SignalStore(tmp_path / "flowbot.db")
    with store.transaction():
        store.save_many([make(start=T0)])
        assert reader.count() == 0
        store.commit()
        assert reader.count() == 1
        store.save_many([make(start=T0 + 5_000)])
        assert reader.count() == 1
    assert reader.count() == 2
    store.close()
    reader.close()


def test_recent_newest_first_with_filters(store: SignalStore) -> None:
    signals = [
        make("BTCUSDT", "whale", T0, 1),
        make("BTCUSDT", "burst", T0 + 5_000, 2),
        make("ETHUSDT", "whale", T0 + 10_000, 3),
        make("BTCUSDT", "imbalance", T0 + 15_000, 3),
        make("ETHUSDT", "burst", T0 + 20_000, 1),
    ]
    for s in reversed(signals):  # insertion order must not matter
        store.save(s)
    assert store.recent() == list(reversed(signals))
    assert [s.id for s in store.recent(symbol="BTCUSDT")] == [signals[3].id, signals[1].id, signals[0].id]
    assert [s.id for s in store.recent(kind="whale")] == [signals[2].id, signals[0].id]
    assert [s.id for s in store.recent(min_severity=2)] == [signals[3].id, signals[2].id, signals[1].id]
    assert [s.id for s in store.recent(since_ms=T0 + 10_000)] == [signals[4].id, signals[3].id, signals[2].id]
    assert [s.id for s in store.recent(limit=2)] == [signals[4].id, signals[3].id]
    assert [s.id for s in store.recent(symbol="ETHUSDT", kind="whale", min_severity=3, since_ms=T0)] == [signals[2].id]
    assert store.recent(symbol="XRPUSDT") == []


def test_set_explanation(store: SignalStore) -> None:
    signal = make()
    store.save(signal)
    assert store.explanation(signal.id) is None
    store.set_explanation(signal.id, "A whale bought 1.2M USDT.", "fake")
    assert store.explanation(signal.id) == ("A whale bought 1.2M USDT.", "fake")
    store.set_explanation(signal.id, "Rewritten.", "other")
    assert store.explanation(signal.id) == ("Rewritten.", "other")
    assert store.get(signal.id) == signal  # the signal itself is untouched
    store.set_explanation("unknown", "text", "fake")  # no row, no error
    assert store.count() == 1


def test_data_survives_reopening_and_migrations_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "flowbot.db"
    first = SignalStore(path)
    first.save(make())
    first.set_explanation(make().id, "why", "fake")
    first.migrate()
    first.close()
    again = SignalStore(path)
    again.migrate()
    assert again.count() == 1 and again.get(make().id) == make()
    assert again.explanation(make().id) == ("why", "fake")
    again.close()


def test_migration_adds_missing_columns_to_an_older_table(tmp_path: Path) -> None:
    path = tmp_path / "flowbot.db"
    old = sqlite_utils.Database(path)
    old["signals"].insert(
        {"id": "x", "symbol": "BTCUSDT", "kind": "whale", "direction": "buy", "severity": 1, "window_start": T0,
         "window_end": T0 + 5_000, "evidence": "{}", "created_at": 1.0},
        pk="id",
    )
    old.close()
    store = SignalStore(path)
    assert {"explanation", "provider"} <= set(store.db["signals"].columns_dict)
    assert store.get("x") == Signal("x", "BTCUSDT", "whale", "buy", 1, T0, T0 + 5_000, {}, 1.0)
    store.set_explanation("x", "why", "fake")
    assert store.explanation("x") == ("why", "fake")
    store.close()

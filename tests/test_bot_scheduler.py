"""Timed bot work: the daily digest at each subscriber's hour, feed-health notices to admins, housekeeping."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from expected_flow import load_csv

from bot.database import open_database
from bot.models import Destination, Message
from bot.outbox import Outbox
from bot.scheduler import BotScheduler
from bot.subscriptions import ChatSettings, Subscriptions
from storage.feature_store import FeatureStore
from storage.signal_store import SignalStore

EIGHT_UTC = 1_767_254_400.0  # 2026-01-01 08:00 UTC
ADMIN = Destination("telegram", "42")


def scheduler(tmp_path: Path, store_dir: Path, health: list[dict], clock: list[float]) -> BotScheduler:
    db = open_database(tmp_path / "flowbot.db")
    return BotScheduler(
        subscriptions=Subscriptions(db), outbox=Outbox(db, 30, clock=lambda: clock[-1]), store=FeatureStore(store_dir),
        signal_store=SignalStore(store_dir / "flowbot.db"), admins=lambda: [ADMIN],
        feed_health=lambda: health[-1], health_interval_s=30, on_queued=lambda: None, clock=lambda: clock[-1],
    )


def queued_messages(s: BotScheduler) -> list[tuple[str, str, str]]:
    return [(r["chat_id"], r["kind"], r["message"]) for r in s.outbox.db["outbox"].rows_where(order_by="id")]


def test_the_digest_goes_once_a_day_at_the_subscribers_hour(tmp_path: Path, btc_data_dir: Path, shared_data: Path):
    clock = [EIGHT_UTC]
    s = scheduler(tmp_path, btc_data_dir, [{}], clock)
    for chat_id, hour, language in (("1", 8, "en"), ("2", 8, "pt"), ("3", 9, "en")):
        key = Destination("telegram", chat_id)
        s.subscriptions.ensure_chat(key, is_private=True)
        s.subscriptions.subscribe(key, ["BTCUSDT", "ETHUSDT"])
        s.subscriptions.save_settings(key, ChatSettings(digest_hour=hour, language=language))

    assert s.queue_digests() == 2
    assert s.queue_digests() == 0  # once per day
    rows = queued_messages(s)
    assert [(chat_id, kind) for chat_id, kind, _ in rows] == [("1", "digest"), ("2", "digest")]

    trades = load_csv(shared_data / "BTCUSDT-aggTrades-2026-01-01.csv")
    change = ((trades[-1]["p"] - trades[0]["p"]) * 100 / trades[0]["p"]).quantize(Decimal("0.01"))
    volume = sum(t["q"] for t in trades)
    share = f"{float(sum(t['q'] for t in trades if not t['m']) * 100 / volume):,.1f}".rstrip("0").rstrip(".")
    with sqlite3.connect(btc_data_dir / "flowbot.db") as db:
        signals = db.execute("select count(*) from signals where symbol = 'BTCUSDT'").fetchone()[0]
    english = rows[0][2]
    assert "Daily digest, 2026-01-01 UTC" in english
    assert f"BTCUSDT: {change}% in 24h, buyers {share}% of volume" in english
    assert f"{signals} signal(s)" in english and "ETHUSDT: no stored flow" in english
    assert "Resumo diário, 2026-01-01 UTC" in rows[1][2] and f"compradores {share}% do volume" in rows[1][2]

    clock.append(EIGHT_UTC + 86_400)
    assert s.queue_digests() == 2  # the next day


def test_admins_hear_when_the_feed_turns_unhealthy_and_when_it_recovers(tmp_path: Path, btc_data_dir: Path):
    health = [{"healthy": True}]
    clock = [EIGHT_UTC]
    s = scheduler(tmp_path, btc_data_dir, health, clock)
    assert not s.check_feed()
    health.append({"healthy": False, "connections": {"spot-0": {"healthy": False}, "spot-1": {"healthy": True}}})
    assert s.check_feed()
    clock.append(EIGHT_UTC + 30)
    assert not s.check_feed()  # still unhealthy: told once
    health.append({"healthy": True})
    clock.append(EIGHT_UTC + 60)
    assert s.check_feed()
    notices = queued_messages(s)
    assert [chat_id for chat_id, _, _ in notices] == ["42", "42"]
    assert "Feed UNHEALTHY" in notices[0][2] and "spot-0" in notices[0][2] and "spot-1" not in notices[0][2]
    assert "Feed recovered" in notices[1][2]


def test_housekeeping_forgets_old_finished_rows_only(tmp_path: Path, btc_data_dir: Path):
    clock = [EIGHT_UTC]
    s = scheduler(tmp_path, btc_data_dir, [{}], clock)
    s.outbox.add_message(ADMIN, "old-sent", "notice", Message("old"))
    s.outbox.add_message(ADMIN, "old-pending", "notice", Message("waiting"))
    sent_id = s.outbox.db.execute("select id from outbox where key = 'old-sent'").fetchone()[0]
    s.outbox.sent(sent_id, "77", "[]")
    clock.append(EIGHT_UTC + 8 * 86_400)
    assert s.housekeeping() == 1
    assert [r["key"] for r in s.outbox.db["outbox"].rows] == ["old-pending"]


async def test_the_running_scheduler_fires_each_job_on_the_bots_database(tmp_path: Path, btc_data_dir: Path):
    clock = [EIGHT_UTC]
    health = [{"healthy": False, "connections": {"spot-0": {"healthy": False}}}]
    s = scheduler(tmp_path, btc_data_dir, health, clock)
    key = Destination("telegram", "1")
    s.subscriptions.ensure_chat(key, is_private=True)
    s.subscriptions.subscribe(key, ["BTCUSDT"])
    s.subscriptions.save_settings(key, ChatSettings(digest_hour=8))
    s.outbox.add_message(ADMIN, "old-failed", "notice", Message("old"))
    s.outbox.failed(s.outbox.db.execute("select id from outbox where key = 'old-failed'").fetchone()[0], "gone")
    clock.append(EIGHT_UTC + 8 * 86_400 + 5)  # 08:00 a week later: digest hour, and the failed row is old
    s.start()
    try:
        for job in s.scheduler.get_jobs():
            job.modify(next_run_time=datetime.now(UTC))
        deadline = time.monotonic() + 10
        while sorted(r["kind"] for r in s.outbox.db["outbox"].rows) != ["digest", "notice"]:
            assert time.monotonic() < deadline, list(s.outbox.db["outbox"].rows)
            await asyncio.sleep(0.02)
    finally:
        s.stop()
    rows = {r["kind"]: r for r in s.outbox.db["outbox"].rows}
    assert rows["digest"]["chat_id"] == "1" and rows["notice"]["chat_id"] == "42"
    assert "Feed UNHEALTHY" in rows["notice"]["message"] and "old" not in rows["notice"]["message"]


def test_admins_hear_when_a_store_cannot_write_and_when_it_writes_again(tmp_path: Path, btc_data_dir: Path):
    clock = [EIGHT_UTC]
    s = scheduler(tmp_path, btc_data_dir, [{"healthy": True}], clock)
    assert s.tell_store_health("feature store", False, "cannot write /data/features: Read-only file system") == 1
    clock.append(EIGHT_UTC + 5)
    assert s.tell_store_health("feature store", True, "writes again") == 1
    notices = queued_messages(s)
    assert [chat_id for chat_id, _, _ in notices] == ["42", "42"]
    assert "Storage FAILING" in notices[0][2] and "Read-only file system" in notices[0][2]
    assert "Storage recovered" in notices[1][2] and "feature store" in notices[1][2]

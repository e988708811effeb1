"""Timed bot work on APScheduler 3: daily digests at each subscriber's hour, feed-health checks that tell
admins when the feed turns unhealthy (and when it recovers), and outbox housekeeping."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.digest import render_digest
from bot.models import Destination, Message
from bot.outbox import Outbox
from bot.subscriptions import Subscriptions
from storage.feature_store import FeatureStore
from storage.signal_store import SignalStore

log = logging.getLogger(__name__)

KEEP_SENT_DAYS = 7


def on_the_loop(job: Callable[[], object]) -> Callable[[], Awaitable[None]]:
    """The job as a coroutine: APScheduler's asyncio executor runs plain functions in a thread pool, where the
    bot's SQLite connection (made on the event loop's thread) refuses to work."""

    async def run_job() -> None:
        job()

    return run_job


class BotScheduler:
    """Owns an AsyncIOScheduler with the digest, health and housekeeping jobs."""

    def __init__(
        self,
        *,
        subscriptions: Subscriptions,
        outbox: Outbox,
        store: FeatureStore,
        signal_store: SignalStore | None,
        admins: Callable[[], list[Destination]],
        feed_health: Callable[[], dict[str, Any] | None],
        health_interval_s: float,
        on_queued: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.subscriptions = subscriptions
        self.outbox = outbox
        self.store = store
        self.signal_store = signal_store
        self.admins = admins
        self.feed_health = feed_health
        self.on_queued = on_queued
        self.clock = clock
        self.feed_was_healthy = True
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.scheduler.add_job(on_the_loop(self.queue_digests), "cron", minute=0, id="digest")
        self.scheduler.add_job(on_the_loop(self.check_feed), "interval", seconds=health_interval_s, id="feed-health")
        self.scheduler.add_job(on_the_loop(self.housekeeping), "interval", minutes=10, id="housekeeping")

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def queue_digests(self) -> int:
        """Queue today's digest for everyone whose hour it is (once per day each); returns how many."""
        now = self.clock()
        hour = datetime.fromtimestamp(now, UTC)
        queued = 0
        for subscriber in self.subscriptions.with_digest_at(hour.hour):
            symbols = [symbol for symbol, _ in self.subscriptions.symbols(subscriber.key)]
            if not symbols:
                continue
            digest = render_digest(symbols, subscriber.settings.language, self.store, self.signal_store, now)
            queued += self.outbox.add_message(subscriber.delivery, f"digest:{hour:%Y-%m-%d}", "digest", digest)
        if queued:
            self.on_queued()
        return queued

    def check_feed(self) -> bool:
        """Tell admins when the feed turns unhealthy or recovers; returns whether a notice was queued."""
        snapshot = self.feed_health()
        if snapshot is None:
            return False
        healthy = bool(snapshot.get("healthy", True))
        if healthy == self.feed_was_healthy:
            return False
        self.feed_was_healthy = healthy
        if healthy:
            notice = Message("Feed recovered", "Every connection is healthy again.")
        else:
            down = [name for name, c in snapshot.get("connections", {}).items() if not c.get("healthy", True)]
            notice = Message("Feed UNHEALTHY", f"Failing connections: {', '.join(down) or 'unknown'}. See /status.")
        key = f"feed-health:{self.clock():.0f}"
        queued = sum(self.outbox.add_message(admin, key, "notice", notice) for admin in self.admins())
        log.warning("feed %s; %d admin notice(s) queued", "recovered" if healthy else "unhealthy", queued)
        if queued:
            self.on_queued()
        return bool(queued)

    def tell_store_health(self, store: str, healthy: bool, reason: str) -> int:
        """Tell admins that a store cannot write (its rows are kept and retried) or writes again; notices queued."""
        if healthy:
            notice = Message("Storage recovered", f"The {store} writes again; everything it kept is written.")
        else:
            notice = Message("Storage FAILING", f"The {store} cannot write: {reason}. Its rows are kept in memory "
                             "and retried; signals are still judged and alerted. See /readyz.")
        key = f"store-health:{store}:{'ok' if healthy else 'failing'}:{self.clock():.0f}"
        queued = sum(self.outbox.add_message(admin, key, "notice", notice) for admin in self.admins())
        if queued:
            self.on_queued()
        return queued

    def housekeeping(self) -> int:
        """Forget sent and failed rows older than a week; returns rows removed."""
        cutoff = self.clock() - KEEP_SENT_DAYS * 86_400
        return self.outbox.prune(cutoff)

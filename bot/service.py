"""The bot side of Flowbot in one object: database, outbox, router, commands, delivery workers, scheduler and
the adapters that the settings ask for (the console when no bot token is set)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from ai.ask import Asker
from bot.config import BotConfig
from bot.console import CONSOLE, ConsoleSender
from bot.database import WalCheckpointer, open_database
from bot.delivery import Dispatcher, Sender
from bot.errors import PlatformStartError
from bot.handlers.commands import Commands
from bot.models import Destination
from bot.outbox import Outbox
from bot.router import AlertRouter
from bot.rules.service import RuleLimits, RuleService
from bot.scheduler import BotScheduler
from bot.subscriptions import Subscriptions
from core.events import Signal
from storage.feature_store import FeatureStore
from storage.signal_store import SignalStore
from storage.track_record import Record, TrackRecords, measure_track_records

if TYPE_CHECKING:
    from bot.discord.webhook import WebhookSender

log = logging.getLogger(__name__)

PLATFORM_RETRY_BASE_S = 1.0  # a platform that cannot start is tried again after 1, 2, 4 ... s
TRACK_RECORDS_EVERY_S = 60.0  # how often signals are measured as they age past each horizon
PLATFORM_RETRY_MAX_S = 300.0  # and at most this long apart (at once for a rejected token)


class Adapter(Protocol):
    """A chat platform front end: receives commands, and offers a Sender for the outbox."""

    @property
    def sender(self) -> Sender: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class BotService:
    """Everything between the bus's signals and the users."""

    def __init__(
        self,
        config: BotConfig,
        *,
        store: FeatureStore,
        signal_store: SignalStore | None,
        asker: Asker | None,
        feed_health: Callable[[], dict[str, Any] | None] = lambda: None,
        provider_health: Callable[[], dict[str, str]] = dict,
        out: TextIO | None = None,
        retry_base_s: float = 1.0,
    ) -> None:
        self.config = config
        self.db = open_database(config.data_dir / "flowbot.db")
        self.db.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer thread does it, off the event loop
        self.checkpointer = WalCheckpointer(config.data_dir / "flowbot.db")
        self.subscriptions = Subscriptions(self.db)
        self.outbox = Outbox(self.db, config.alert_merge_window)
        self.rules = RuleService(
            self.db, self.outbox, self.subscriptions, futures=config.futures, on_queued=self.wake,
            limits=RuleLimits(per_chat=config.rules_per_chat, min_interval_s=config.rule_interval),
        )
        self.commands = Commands(
            subscriptions=self.subscriptions, outbox=self.outbox, store=store, symbols=list(config.symbols),
            asker=asker, feed_health=feed_health, provider_health=provider_health, on_queued=self.wake,
            rules=self.rules, track_records=self._measured_records,
        )
        self.adapters: list[Adapter] = self._adapters()
        static: list[Destination] = []
        senders: list[tuple[Sender, float]] = [(a.sender, self._spacing(a.sender.platform)) for a in self.adapters]
        if config.discord is not None and config.discord.alert_channel_id:
            static.append(Destination("discord", config.discord.alert_channel_id))
        self._webhook: WebhookSender | None = None
        if config.webhook is not None:
            from bot.discord.webhook import WebhookSender  # discord.py only when a webhook is configured

            self._webhook = WebhookSender(config.webhook.url.get_secret_value(), config.webhook.api_base_url)
            senders.append((self._webhook, 0.0))
            static.append(Destination("webhook", "default"))
        if not self.adapters and out is not None:
            senders.append((ConsoleSender(out), 0.0))
            static.append(CONSOLE)
        self.dispatchers = {
            sender.platform: Dispatcher(
                sender, self.outbox, self.subscriptions, per_destination_interval=spacing,
                concurrency=self._concurrency(sender.platform), retry_base_s=retry_base_s,
            )
            for sender, spacing in senders
        }
        self.store = store
        self.records = TrackRecords(config.data_dir / "flowbot.db", store)
        self.router = AlertRouter(self.subscriptions, self.outbox, static=static, on_queued=self.wake,
                                  track_record=self.record_of, positive_record=self._positive_record)
        self.scheduler = BotScheduler(
            subscriptions=self.subscriptions, outbox=self.outbox, store=store, signal_store=signal_store,
            admins=self.admin_destinations, feed_health=feed_health,
            health_interval_s=config.health_check_interval, on_queued=self.wake,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._started: list[Adapter] = []
        self.platform_problems: dict[str, str] = {}  # platforms not started yet, and why

    def _adapters(self) -> list[Adapter]:
        """The configured platforms' adapters; each platform's SDK is imported only when its token is set."""
        adapters: list[Adapter] = []
        if self.config.telegram is not None:
            from bot.telegram.adapter import TelegramAdapter

            adapters.append(TelegramAdapter(self.config.telegram, self.commands))
        if self.config.discord is not None:
            from bot.discord.adapter import DiscordAdapter

            adapters.append(DiscordAdapter(self.config.discord, self.commands, self.config.symbols))
        return adapters

    def _spacing(self, platform: str) -> float:
        """Seconds between two messages to one destination."""
        telegram = self.config.telegram
        return telegram.chat_interval if platform == "telegram" and telegram is not None else 0.0

    def _concurrency(self, platform: str) -> int:
        """Sends in flight at once: enough for Telegram's configured rate at ~100 ms round trips (more would only
        make the HTTP pool's bookkeeping, which grows with its size, cost more per request)."""
        telegram = self.config.telegram
        return telegram.concurrency if platform == "telegram" and telegram is not None else 16

    def admin_destinations(self) -> list[Destination]:
        telegram = self.config.telegram
        return self.subscriptions.admins_reach("telegram", telegram.admin_ids if telegram is not None else ())

    def wake(self) -> None:
        for dispatcher in self.dispatchers.values():
            dispatcher.wake()

    async def on_signal(self, signal: Signal) -> int:
        """Queue the signal's alert for every destination that wants it; returns how many it reached."""
        return await self.router.on_signal(signal)

    async def on_explanation(self, signal_id: str, text: str, provider: str) -> None:
        await self.router.on_explanation(signal_id, text, provider)

    async def start(self) -> None:
        """Start delivering; each chat platform starts on its own, retried with backoff while it cannot (its alerts
        wait in the outbox), so that one platform down never stops the others nor the engine."""
        unconfirmed = self.outbox.recover()
        if unconfirmed:
            log.warning("%d alert(s) were on their way when the process stopped; kept as unconfirmed, not resent",
                        unconfirmed)
        platforms = {adapter.sender.platform for adapter in self.adapters}
        self.platform_problems = {platform: "starting" for platform in platforms}
        self._tasks = [asyncio.create_task(d.run(), name=f"deliver-{p}")
                       for p, d in self.dispatchers.items() if p not in platforms]
        tried = {adapter.sender.platform: asyncio.Event() for adapter in self.adapters}
        self._tasks += [asyncio.create_task(self._start_platform(a, tried[a.sender.platform]),
                                            name=f"start-{a.sender.platform}") for a in self.adapters]
        await asyncio.gather(*(event.wait() for event in tried.values()))  # up, or retrying in the background
        self._tasks.append(asyncio.create_task(self._measure_records(), name="track-records"))
        self.scheduler.start()
        self.checkpointer.start()

    async def _start_platform(self, adapter: Adapter, tried: asyncio.Event) -> None:
        """Start the adapter, retrying with doubling delays (jittered), then deliver its platform's alerts;
        `tried` is set once the first attempt succeeded or failed."""
        platform = adapter.sender.platform
        delay, failed = PLATFORM_RETRY_BASE_S, False
        while True:
            try:
                await adapter.start()
                break
            except PlatformStartError as exc:
                reason, rejected = exc.reason, exc.rejected
                log.error("%s: %s; trying again in %.0f s", platform, reason, delay)
            except Exception as exc:  # an unexpected failure of one platform never stops the others
                reason, rejected = f"{type(exc).__name__}: {exc}", False
                log.error("%s: could not start; trying again in %.0f s", platform, delay, exc_info=True)
            self.platform_problems[platform], failed = reason, True
            tried.set()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = PLATFORM_RETRY_MAX_S if rejected else min(PLATFORM_RETRY_MAX_S, delay * 2)
        self._started.append(adapter)
        del self.platform_problems[platform]
        tried.set()
        if failed:
            log.warning("%s: started after all; its pending alerts are sent now", platform)
        await self.dispatchers[platform].run()

    async def _measure_records(self) -> None:
        """Keep track records current: every minute, measure the signals that aged past a horizon since."""
        path = self.config.data_dir / "flowbot.db"
        while True:
            try:
                await asyncio.to_thread(measure_track_records, path, self.store)
            except Exception:
                log.exception("measuring track records failed; trying again in %.0f s", TRACK_RECORDS_EVERY_S)
            await asyncio.sleep(TRACK_RECORDS_EVERY_S)

    def record_of(self, signal: Signal) -> dict[str, Any] | None:
        """The record an alert of this signal carries (its kind and direction on its symbol, before it)."""
        record = self.records.record_of(signal.symbol, signal.kind, signal.direction, signal.window_end)
        return None if record is None else asdict(record)

    def _positive_record(self, signal: Signal) -> bool:
        return self.records.positive(signal.symbol, signal.kind, signal.window_end)

    def _measured_records(self, symbol: str | None, kind: str | None) -> list[Record]:
        """/stats: measure what aged since, then the records (a connection of its own: runs in a worker thread)."""
        records = TrackRecords(self.config.data_dir / "flowbot.db", self.store)
        try:
            for name in [symbol] if symbol else self.store.symbols():
                records.update(name)
            return records.records(symbol, kind)
        finally:
            records.close()

    async def stop(self) -> None:
        """Stop sending (rows in flight stay pending and are sent after a restart), then the adapters."""
        self.rules.keep_levels()
        self.scheduler.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for adapter in reversed(self.adapters):
            try:
                await adapter.stop()
            except Exception:
                if adapter in self._started:  # one that never started may have nothing to stop
                    log.exception("stopping %s failed", type(adapter).__name__)
        if self._webhook is not None:
            await self._webhook.close()
        self.db.close()
        self.records.close()
        self.checkpointer.stop()


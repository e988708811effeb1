"""Users' alert rules end to end: stored in SQLite, judged from the bus's windows and trade batches, and each
firing queued in the outbox like a signal (once per rule and observation, silent in the chat's quiet hours)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import sqlite_utils

from bot.models import Destination, Message
from bot.outbox import Outbox
from bot.rules.grammar import RuleSpec
from bot.rules.judge import Firing, RuleJudge
from bot.rules.messages import rule_body, rule_title
from bot.rules.store import ACTIVE, PAUSED, Rule, RuleStore
from bot.subscriptions import ChatSettings, Subscriptions
from core.events import Event, PriceTick, WindowClosed
from engine.bus import Subscription

log = logging.getLogger(__name__)
JUDGE_EVERY_S = 0.1  # rules are judged in batches this often (each trade batch and window in order)
LEVELS_EVERY_S = 5.0  # how often the judged values are kept when nothing fires (firings keep them at once)


@dataclass(frozen=True)
class RuleLimits:
    """Rules a chat may hold, and the shortest time between two firings of one rule (market time)."""

    per_chat: int = 50
    min_interval_s: float = 60.0


class RuleService:
    """The rules of every chat: create, list, pause, resume, delete; judge events; queue firings."""

    def __init__(
        self, db: sqlite_utils.Database, outbox: Outbox, subscriptions: Subscriptions, *,
        limits: RuleLimits = RuleLimits(), futures: bool = False, on_queued: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = RuleStore(db)
        self.outbox = outbox
        self.subscriptions = subscriptions
        self.limits = limits
        self.futures = futures  # the market has liquidations, open interest and funding (MARKET=usdm)
        self.on_queued = on_queued
        self.clock = clock
        self.judge = RuleJudge()
        self.proposals: dict[tuple[Destination, str], RuleSpec] = {}  # proposed by /ask, until confirmed
        self._settings: dict[Destination, ChatSettings] = {}  # chats' settings as of `_settings_version`
        self._settings_version = -1
        self.rules: dict[int, Rule] = {}
        self.last_fired: dict[int, int] = {}  # rule id -> ms (market time) of its last firing
        self._titles: dict[int, tuple[str, str]] = {}  # rule id -> (language, its firings' title in it)
        self.busy_s = 0.0  # time spent judging and queueing firings
        for rule in self.store.active():
            self._remember(rule)
            self.judge.add(rule.id, rule.spec, fresh=False)  # already judged before the restart
        self.judge.restore(self.store.levels())
        self.levels_kept_at = self.clock()

    def chat_rules(self, destination: Destination) -> list[Rule]:
        return self.store.of_chat(destination)

    def room_left(self, destination: Destination) -> bool:
        return self.store.count(destination) < self.limits.per_chat

    def create(self, destination: Destination, settings_key: Destination, user_id: str, spec: RuleSpec) -> Rule:
        """Store and start judging a rule; it fires at once when its condition already holds."""
        rule = self.store.add(destination, settings_key, user_id, spec)
        self._start(rule)
        return rule

    def _remember(self, rule: Rule) -> None:
        self.rules[rule.id] = rule
        if rule.last_fired_ms is not None:
            self.last_fired[rule.id] = rule.last_fired_ms

    def _start(self, rule: Rule) -> None:
        self._remember(rule)
        firing = self.judge.add(rule.id, rule.spec)
        if firing is not None:
            self._fire([firing])

    def owned(self, destination: Destination, rule_id: int) -> Rule | None:
        rule = self.store.get(rule_id)
        return rule if rule is not None and rule.destination == destination else None

    def delete(self, rule: Rule) -> None:
        self._stop(rule)
        self.store.delete(rule.id)

    def pause(self, rule: Rule) -> None:
        self._stop(rule)
        self.store.set_state(rule.id, PAUSED)

    def resume(self, rule: Rule) -> None:
        if rule.state == ACTIVE:
            return
        self.store.set_state(rule.id, ACTIVE)
        self._start(replace(rule, state=ACTIVE))

    def _stop(self, rule: Rule) -> None:
        self.last_fired.pop(rule.id, None)
        self._titles.pop(rule.id, None)
        if self.rules.pop(rule.id, None) is not None:
            self.judge.remove(rule.id, rule.spec)

    def on_event(self, event: Event) -> int:
        """Judge a closed window or a trade batch; returns how many firings were queued."""
        return self.on_events((event,))

    def on_events(self, events: Iterable[Event]) -> int:
        """Judge closed windows and trade batches in order, then queue their firings and keep the judged values
        in one transaction; returns how many firings were queued."""
        started = time.perf_counter()
        try:
            return self._judge(events)
        finally:
            self.busy_s += time.perf_counter() - started

    def _judge(self, events: Iterable[Event]) -> int:
        firings: list[Firing] = []
        for event in events:
            if isinstance(event, PriceTick):
                firings += self.judge.on_tick(event)
            elif isinstance(event, WindowClosed):
                firings += self.judge.on_window(event)
        if firings:
            return self._fire(firings)
        if self.clock() - self.levels_kept_at >= LEVELS_EVERY_S:
            self.keep_levels()
        return 0

    def keep_levels(self) -> None:
        """Write the values judged since the last write, so a restart judges on from them."""
        self.levels_kept_at = self.clock()
        levels = self.judge.take_levels()
        if levels:
            with self.store.db.conn:
                self.store.save_levels(levels)

    async def judge_from(self, events: Subscription, every_s: float = JUDGE_EVERY_S) -> None:
        """Judge the bus's events in batches: every `every_s` it takes every event queued since, judged and
        committed together (no await in between, so a Redis subscription acknowledges only what was committed)."""
        async for event in events:
            batch = [event]
            for _ in range(events.depth):
                batch.append(events.get_nowait())
            self.on_events(batch)
            await asyncio.sleep(every_s)  # let the next events gather: one pass and one transaction for them all

    def _fire(self, firings: list[Firing]) -> int:
        """Queue the firings whose rules did not fire less than the minimum interval ago (market time), with the
        judged values, in one transaction; returns how many were new (an observation judged again queues nothing
        twice)."""
        interval_ms = self.limits.min_interval_s * 1000
        hour = time.gmtime(self.clock()).tm_hour
        if self._settings_version != self.subscriptions.settings_version:
            self._settings.clear()
            self._settings_version = self.subscriptions.settings_version
        settings = self._settings
        messages: list[tuple[Destination, str, str, Message]] = []
        fired: list[tuple[int, int, str]] = []
        last_fired, titles = self.last_fired, self._titles
        for rule_id, _, value, at_ms, key in firings:
            rule = self.rules.get(rule_id)
            if rule is None or at_ms - last_fired.get(rule_id, -interval_ms) < interval_ms:
                continue
            chat = settings.get(rule.settings_key)
            if chat is None:
                chat = settings[rule.settings_key] = self.subscriptions.settings(rule.settings_key)
            language, title = titles.get(rule_id) or ("", "")
            if language != chat.language:
                language, title = titles[rule_id] = chat.language, rule_title(chat.language, rule.spec)
            messages.append((rule.destination, f"rule:{rule_id}:{key}", "rule",
                             Message(title, rule_body(language, rule.spec, value, at_ms),
                                     silent=_quiet(chat, hour))))
            fired.append((rule_id, at_ms, str(value)))
            last_fired[rule_id] = at_ms
        self.levels_kept_at = self.clock()
        with self.store.db.conn:
            queued = self.outbox.insert_messages(messages) if messages else 0
            self.store.fired(fired)
            self.store.save_levels(self.judge.take_levels())
        if queued:
            self.on_queued()
        return queued

def _quiet(settings: ChatSettings, hour: int) -> bool:
    """The chat's quiet hours (UTC) hold now: firings arrive silently."""
    start, end = settings.quiet_start, settings.quiet_end
    if start is None or end is None or start == end:
        return False
    return start <= hour < end if start < end else (hour >= start or hour < end)


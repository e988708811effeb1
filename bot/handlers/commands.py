"""The bot commands, once for every platform: each takes a Caller and arguments and returns a Message."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ai.ask import Asker
from bot.handlers.registry import Argument, ArgumentKind, CommandRegistry
from bot.messages import Say, say_in
from bot.messages import text as text_of
from bot.models import Button, Caller, Destination, Message
from bot.outbox import Outbox
from bot.rules.messages import rule_help
from bot.subscriptions import KIND_MODES, LANGUAGES, SIGNAL_KINDS, ChatSettings, Subscriptions
from core.health import feed_state
from engine.signals.registry import all_kinds
from presentation.flow_text import format_flow
from presentation.symbols import resolve_symbol
from presentation.track_record_text import record_lines
from storage.feature_store import FeatureStore
from storage.flow_query import FLOW_SPANS_MS, flow_report
from storage.track_record import Record

if TYPE_CHECKING:
    from bot.rules.service import RuleService

log = logging.getLogger(__name__)


COMMANDS: CommandRegistry[Commands] = CommandRegistry()
KIND_ALIASES = {"cvd": "cvd_divergence", "divergence": "cvd_divergence", "whales": "whale", "bursts": "burst"}
QUIET_PRESETS = ("off", "22-7", "0-8")
DIGEST_PRESETS = ("off", "8", "20")
LANGUAGE_NAMES = {"en": "English", "pt": "Português"}
DEFAULT_SPAN = "1h"
BEHIND_SHOWN_S = 2.0  # /status says the feed is behind the market from this event-time lag on
SYMBOL_AND_WINDOW = (
    Argument("symbol", ArgumentKind.SYMBOL, "A symbol, e.g. BTCUSDT"),
    Argument("window", ArgumentKind.WINDOW, "How far back (default 1h)", required=False),
)


def subscriber_of(caller: Caller) -> Destination:
    """Whose subscriptions a command changes: the chat (and topic), or on Discord the whole server."""
    if caller.destination.platform == "discord" and caller.guild_id:
        return Destination("discord", caller.guild_id)
    return caller.destination


def _hour(text: str) -> int | None:
    """An hour of the day written in ASCII digits (str.isdigit also accepts '²' and other digits int() refuses)."""
    if not (text.isascii() and text.isdigit()):
        return None
    hour = int(text)
    return hour if 0 <= hour < 24 else None


def _hours(text: str) -> tuple[int, int] | None:
    start, _, end = text.partition("-")
    a, b = _hour(start), _hour(end)
    return None if a is None or b is None else (a, b)


class Commands:
    """Platform-neutral command logic; adapters translate platform updates into these calls and back."""

    def __init__(
        self,
        *,
        subscriptions: Subscriptions,
        outbox: Outbox,
        store: FeatureStore,
        symbols: list[str],
        asker: Asker | None,
        feed_health: Callable[[], dict[str, Any] | None] = lambda: None,
        provider_health: Callable[[], dict[str, str]] = dict,
        on_queued: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        rules: RuleService | None = None,
        track_records: Callable[[str | None, str | None], list[Record]] | None = None,
    ) -> None:
        self.subscriptions = subscriptions
        self.outbox = outbox
        self.store = store
        self.symbols = symbols
        self.asker = asker
        self.feed_health = feed_health
        self.provider_health = provider_health
        self.on_queued = on_queued
        self.clock = clock
        self.rules = rules  # users' alert rules (/alert, /alerts: bot/handlers/rule_commands.py)
        self.track_records = track_records  # (symbol, kind) -> records, measured first (blocking: a worker thread)

    def say_for(self, caller: Caller) -> Say:
        """The words of replies to this caller, in their chat's language."""
        return say_in(self.subscriptions.settings(subscriber_of(caller)).language)

    async def run(self, caller: Caller, name: str, args: list[str]) -> Message:
        """Answer a command by name; unknown commands and failures get a short helpful reply."""
        say = self.say_for(caller)
        spec = COMMANDS.get(name)
        if spec is None:
            return Message(say("unknown_command", name=name), say("unknown_command.hint"))
        if spec.admin and not caller.is_admin:
            return Message(say("admin_only"))
        try:
            return await spec.handler(self, caller, args, say)
        except Exception:
            log.exception("/%s failed", name)
            return Message(say("failed"), say("failed.hint"))

    def _unknown_symbol(self, text: str, say: Say) -> Message:
        return Message(say("unknown_symbol", text=repr(text[:20])),
                       say("unknown_symbol.hint", symbols=", ".join(self.symbols)))

    def _usage(self, name: str, say: Say) -> Message:
        spec = COMMANDS.get(name)
        assert spec is not None
        return Message(say("usage", name=name, usage=spec.usage(say)).rstrip(), spec.description(say) + ".")

    @COMMANDS.command("start")
    async def start(self, caller: Caller, args: list[str], say: Say) -> Message:
        self.subscriptions.ensure_chat(subscriber_of(caller), is_private=caller.is_private,
                                       channel_id=self._channel(caller))
        help_message = await self.show_help(caller, args, say)
        return Message(say("start"), f"{say('start.hint', symbol=self.symbols[0])}\n\n{help_message.body}")

    @COMMANDS.command("help")
    async def show_help(self, caller: Caller, args: list[str], say: Say) -> Message:
        if args and args[0].lower().lstrip("/") == "alert":
            return Message(*rule_help(self.subscriptions.settings(subscriber_of(caller)).language))
        lines = [f"/{c.name} {c.usage(say)}".rstrip() + f": {c.description(say)}"
                 for c in COMMANDS if not c.admin or caller.is_admin]
        if caller.destination.platform == "discord":
            lines.append(say("help.alerts_here"))
        lines.append(say("help.symbols", symbols=_listed(self.symbols), kinds=", ".join(SIGNAL_KINDS)))
        lines.extend(f"• {spec.name}: {spec.doc}" for spec in all_kinds())  # each kind documents itself in English
        return Message(say("help"), "\n".join(lines))

    def _channel(self, caller: Caller) -> str | None:
        return caller.destination.chat_id if caller.destination.platform == "discord" else None

    @COMMANDS.command(
        "subscribe",
        Argument("symbols", ArgumentKind.SYMBOLS, "Symbols, e.g. BTCUSDT ETHUSDT"),
        Argument("kinds", ArgumentKind.KINDS, "Only these kinds, e.g. whale burst", required=False),
    )
    async def subscribe(self, caller: Caller, args: list[str], say: Say) -> Message:
        if not args:
            return self._usage("subscribe", say)
        symbols: list[str] = []
        kinds: list[str] = []
        for word in args:
            kind = KIND_ALIASES.get(word.lower(), word.lower())
            if kind in SIGNAL_KINDS:
                if kind not in kinds:
                    kinds.append(kind)
                continue
            symbol = resolve_symbol(word, self.symbols)
            if symbol is None:
                return self._unknown_symbol(word, say)
            if symbol not in symbols:
                symbols.append(symbol)
        if not symbols:
            return Message(say("subscribe.which"), say("subscribe.which.hint", symbol=self.symbols[0]))
        key = subscriber_of(caller)
        self.subscriptions.ensure_chat(key, is_private=caller.is_private, channel_id=self._channel(caller))
        self.subscriptions.subscribe(key, symbols, kinds)
        where = ""
        if key.platform == "discord":
            where = say("subscribe.where",
                        channel=self.subscriptions.alert_channel(key) or caller.destination.chat_id)
        return Message(say("subscribe.done", symbols=", ".join(symbols), kinds=_kinds(kinds, say), where=where),
                       say("subscribe.done.hint"))

    @COMMANDS.command("unsubscribe", Argument("symbols", ArgumentKind.SYMBOLS_OR_ALL, "Symbols, or all"))
    async def unsubscribe(self, caller: Caller, args: list[str], say: Say) -> Message:
        if not args:
            return self._usage("unsubscribe", say)
        key = subscriber_of(caller)
        held = [symbol for symbol, _ in self.subscriptions.symbols(key)]
        if [a.lower() for a in args] == ["all"]:
            wanted = held
        else:
            wanted = []
            for word in args:
                symbol = resolve_symbol(word, self.symbols)
                if symbol is None:
                    return self._unknown_symbol(word, say)
                wanted.append(symbol)
        removed = self.subscriptions.unsubscribe(key, wanted)
        if not removed:
            return Message(say("unsubscribe.none"), say("unsubscribe.none.hint"))
        return Message(say("unsubscribe.done", symbols=", ".join(removed)))

    @COMMANDS.command("list")
    async def show_list(self, caller: Caller, args: list[str], say: Say) -> Message:
        held = self.subscriptions.symbols(subscriber_of(caller))
        if not held:
            return Message(say("list.empty"), say("list.empty.hint", symbol=self.symbols[0]))
        lines = [f"{symbol}: {_kinds(kinds, say)}" for symbol, kinds in held]
        return Message(say("list"), "\n".join(lines))

    def _symbol_and_span(self, name: str, args: list[str], say: Say) -> tuple[str, str] | Message:
        if not args or len(args) > 2:
            return self._usage(name, say)
        symbol = resolve_symbol(args[0], self.symbols)
        if symbol is None:
            return self._unknown_symbol(args[0], say)
        span = args[1].lower() if len(args) == 2 else DEFAULT_SPAN
        if span not in FLOW_SPANS_MS:
            return Message(say("unknown_window", text=repr(args[1][:10])),
                           say("unknown_window.hint", windows=", ".join(FLOW_SPANS_MS)))
        return symbol, span

    @COMMANDS.command("flow", *SYMBOL_AND_WINDOW)
    async def flow(self, caller: Caller, args: list[str], say: Say) -> Message:
        parsed = self._symbol_and_span("flow", args, say)
        if isinstance(parsed, Message):
            return parsed
        symbol, span = parsed
        report = flow_report(self.store, symbol, span)
        if report is None:
            return Message(say("no_flow", symbol=symbol), say("no_flow.hint"))
        title, _, body = format_flow(report, self.clock()).partition("\n")
        return Message(title, body)

    @COMMANDS.command("chart", *SYMBOL_AND_WINDOW, slow=True)
    async def chart(self, caller: Caller, args: list[str], say: Say) -> Message:
        parsed = self._symbol_and_span("chart", args, say)
        if isinstance(parsed, Message):
            return parsed
        symbol, span = parsed
        from presentation.charts import render_chart  # matplotlib (~37 MB) only once a chart is asked for

        chart = render_chart(self.store, symbol, span)
        if chart is None:
            return Message(say("no_flow", symbol=symbol), say("no_flow.hint"))
        return Message(say("chart", symbol=symbol, span=span), say("chart.caption"), png=chart.png)

    @COMMANDS.command(
        "stats",
        Argument("symbol", ArgumentKind.SYMBOL, "A symbol, e.g. BTCUSDT", required=False),
        Argument("kind", ArgumentKind.KINDS, "One signal kind, e.g. absorption", required=False),
        slow=True,
    )
    async def stats(self, caller: Caller, args: list[str], say: Say) -> Message:
        if len(args) > 2:
            return self._usage("stats", say)
        symbol = kind = None
        for word in args:
            named = KIND_ALIASES.get(word.lower(), word.lower())
            if named in SIGNAL_KINDS and kind is None:
                kind = named
                continue
            symbol = resolve_symbol(word, self.symbols) if symbol is None else None
            if symbol is None:
                return Message(say("stats.unknown", text=repr(word[:20])),
                               say("stats.unknown.hint", symbols=_listed(self.symbols), kinds=", ".join(SIGNAL_KINDS)))
        if self.track_records is None:
            return Message(say("stats.unavailable"))
        records = await asyncio.to_thread(self.track_records, symbol, kind)
        lines = record_lines(records, self.subscriptions.settings(subscriber_of(caller)).language)
        if not lines:
            return Message(say("stats.none"), say("stats.none.hint"))
        return Message(say("stats"), "\n".join(lines) + "\n\n" + say("stats.hint"))

    @COMMANDS.command("ask", Argument("question", ArgumentKind.TEXT, "e.g. is BTCUSDT being bought?"), slow=True)
    async def ask(self, caller: Caller, args: list[str], say: Say) -> Message:
        if not args:
            return Message(say("ask.empty"), say("ask.empty.hint", symbol=self.symbols[0]))
        from bot.handlers.rule_commands import proposal  # declared on COMMANDS after this module

        proposed = proposal(self, caller, " ".join(args), say)
        if proposed is not None:
            return proposed
        if self.asker is None:
            return Message(say("ask.unavailable"))
        answer = await self.asker.ask(" ".join(args), user=f"{caller.destination.platform}:{caller.user_id}")
        return Message(answer.text)

    def _settings_message(self, settings: ChatSettings, say: Say, note: str = "", settings_buttons: bool = True
                          ) -> Message:
        off = say("settings.off")
        quiet = (off if settings.quiet_start is None
                 else say("settings.quiet_range", start=settings.quiet_start, end=settings.quiet_end))
        digest = off if settings.digest_hour is None else f"{settings.digest_hour:02d}:00 UTC"
        lines = [
            say("settings.severity", severity=settings.min_severity),
            *(f"{kind}: {settings.mode(kind)}" for kind in SIGNAL_KINDS),
            say("settings.quiet", quiet=quiet),
            say("settings.language", language=LANGUAGE_NAMES[settings.language]),
            say("settings.digest", digest=digest),
            say("settings.positive", positive=say("settings.on") if settings.positive_only else off),
            say("settings.how", tail=say("settings.how.buttons") if settings_buttons else "."),
        ]
        cycle = {mode: KIND_MODES[(i + 1) % len(KIND_MODES)] for i, mode in enumerate(KIND_MODES)}
        buttons = (
            tuple(Button(("• " if settings.min_severity == n else "") + say("button.severity", severity=n),
                         f"settings severity {n}") for n in (1, 2, 3)),
            *((Button(f"{kind}: {settings.mode(kind)}", f"settings {kind} {cycle[settings.mode(kind)]}"),)
              for kind in SIGNAL_KINDS),
            tuple(Button(name, f"settings language {language}") for language, name in LANGUAGE_NAMES.items()),
            tuple(Button(say("button.quiet", preset=p), f"settings quiet {p}") for p in QUIET_PRESETS),
            tuple(Button(say("button.digest", preset=p), f"settings digest {p}") for p in DIGEST_PRESETS),
            (Button(("• " if settings.positive_only else "") + say("button.positive"),
                    f"settings positive {'off' if settings.positive_only else 'on'}"),),
        )
        return Message(note or say("settings"), "\n".join(lines), buttons=buttons if settings_buttons else ())

    @COMMANDS.command(
        "settings",
        Argument("option", ArgumentKind.SETTING_OPTION, "What to change (leave out to see the settings)",
                 required=False),
        Argument("value", ArgumentKind.SETTING_VALUE, "Its new value", required=False),
    )
    async def settings(self, caller: Caller, args: list[str], say: Say) -> Message:
        key = subscriber_of(caller)
        settings = self.subscriptions.ensure_chat(key, is_private=caller.is_private, channel_id=self._channel(caller))
        buttons = caller.destination.platform == "telegram"
        if not args:
            return self._settings_message(settings, say, settings_buttons=buttons)
        changed = _changed(settings, [a.lower() for a in args], say)
        if isinstance(changed, str):
            return Message(changed, say("settings.example"))
        self.subscriptions.save_settings(key, changed)
        return self._settings_message(changed, say, say("settings.saved"), settings_buttons=buttons)

    async def on_button(self, caller: Caller, data: str) -> Message:
        """A settings button was pressed: its data is the same text as a /settings command."""
        say = self.say_for(caller)
        words = data.split()
        if words and words[0] == "alert":  # a rule's delete/pause/resume, or a proposed rule's confirmation
            return await self.run(caller, "alert", words[1:])
        if not words or words[0] != "settings":
            return Message(say("button.stale"))
        return await self.settings(caller, words[1:], say)

    @COMMANDS.command("status")
    async def status(self, caller: Caller, args: list[str], say: Say) -> Message:
        snapshot = self.feed_health()
        if snapshot is None:
            return Message(say("status.unknown"), say("status.unknown.hint"))
        lines = []
        for symbol, h in snapshot.get("symbols", {}).items():
            seen = h.get("last_trade_age_s")
            age = say("status.no_trade") if seen is None else say("status.last_trade", age=seen)
            lag = "" if h.get("lag_ms") is None else say("status.lag", lag=h["lag_ms"])
            lines.append(say("status.symbol", symbol=symbol, age=age, lag=lag, found=h.get("gaps_found", 0),
                             filled=h.get("gaps_filled", 0), unfilled=h.get("gaps_unfilled", 0),
                             missing=h.get("missing_ids", 0)))
        for name, c in snapshot.get("connections", {}).items():
            state = say("status.connected") if c.get("connected") else say("status.disconnected")
            event, processing = c.get("event_time_lag_s"), c.get("processing_lag_s")
            lags = "" if event is None else say("status.lags", event=event, processing=processing or 0.0)
            lines.append(say("status.connection", name=name, state=state, reconnects=c.get("reconnects", 0),
                             lags=lags))
        verdict = _feed_verdict(snapshot, say)
        behind = snapshot.get("behind_s") or 0.0
        if behind >= BEHIND_SHOWN_S:
            verdict += f", {say('status.behind', seconds=behind)}"
        return Message(say("status", verdict=verdict), "\n".join(lines) or say("status.no_symbols"))

    @COMMANDS.command("admin", admin=True)
    async def admin(self, caller: Caller, args: list[str], say: Say) -> Message:
        counts = self.subscriptions.counts()
        depth = self.outbox.depth()
        states = self.outbox.counts()
        providers = self.provider_health()
        snapshot = self.feed_health()
        feed = (say("admin.unknown") if snapshot is None
                else say("status.healthy") if snapshot.get("healthy") else say("status.unhealthy"))
        lines = [
            say("admin.chats", chats=counts["chats"], active=counts["active_chats"],
                subscriptions=counts["subscriptions"]),
            say("admin.waiting", waiting=", ".join(f"{p} {n}" for p, n in sorted(depth.items())) or "0"),
            say("admin.states", states=", ".join(f"{s} {n}" for s, n in sorted(states.items()))
                or say("admin.empty")),
            say("admin.providers", providers=", ".join(f"{p} {s}" for p, s in providers.items())
                or say("admin.offline")),
            say("admin.feed", feed=feed),
        ]
        return Message(say("admin"), "\n".join(lines))

    @COMMANDS.command("broadcast", Argument("text", ArgumentKind.TEXT, "The notice every chat receives"), admin=True)
    async def broadcast(self, caller: Caller, args: list[str], say: Say) -> Message:
        text = " ".join(args).strip()
        if not text:
            return self._usage("broadcast", say)
        key = f"broadcast:{self.clock():.6f}"
        queued = sum(
            self.outbox.add_message(d, key, "broadcast", Message(text_of(language, "broadcast.notice"), text[:3500]))
            for d, language in self.subscriptions.all_active()
        )
        self.on_queued()
        return Message(say("broadcast.queued", count=queued))

    async def alerts_here(self, caller: Caller) -> Message:
        """Discord's /alerts here: this server's alerts go to this channel (needs Manage Channels)."""
        say = self.say_for(caller)
        if caller.guild_id is None:
            return Message(say("alerts_here.server_only"))
        if not caller.can_manage_channels:
            return Message(say("alerts_here.permission"))
        key = subscriber_of(caller)
        self.subscriptions.ensure_chat(key, is_private=False, channel_id=caller.destination.chat_id)
        self.subscriptions.set_alert_channel(key, caller.destination.chat_id)
        return Message(say("alerts_here.done", channel=caller.destination.chat_id))


def _listed(symbols: list[str], most: int = 30) -> str:
    """The followed symbols, or the first ones and how many (SYMBOLS=ALL: a message holds a few thousand characters)."""
    return ", ".join(symbols) if len(symbols) <= most else f"{', '.join(symbols[:12])}, \u2026 ({len(symbols)})"


def _feed_verdict(snapshot: dict[str, Any], say: Say) -> str:
    """healthy, or connecting/reconnecting with the failures in a row and the last reason (never healthy before the
    first connection)."""
    state = feed_state(snapshot)
    if state.ok:
        return say("status.healthy")
    verdict = say(f"status.{state.phase}")
    if state.failures:
        verdict += say("status.failures", failures=state.failures, last=state.last_error or "-")
    return verdict if state.healthy else f"{say('status.unhealthy')}, {verdict}"


def _kinds(kinds: tuple[str, ...] | list[str], say: Say) -> str:
    return ", ".join(kinds) if kinds else say("all_kinds")


def _changed(settings: ChatSettings, args: list[str], say: Say) -> ChatSettings | str:
    """Settings with one option changed, or why the arguments are not understood."""
    if len(args) != 2:
        return say("settings.one_option")
    option, value = args
    option = KIND_ALIASES.get(option, option)
    if option == "severity":
        if value not in {"1", "2", "3"}:
            return say("settings.severity_values")
        return replace(settings, min_severity=int(value))
    if option in SIGNAL_KINDS:
        if value not in KIND_MODES:
            return say("settings.kind_values", modes=", ".join(KIND_MODES))
        return replace(settings, kind_modes={**settings.kind_modes, option: value})
    if option == "language":
        if value not in LANGUAGES:
            return say("settings.language_values")
        return replace(settings, language=value)
    if option == "quiet":
        if value == "off":
            return replace(settings, quiet_start=None, quiet_end=None)
        hours = _hours(value)
        if hours is None:
            return say("settings.quiet_values")
        return replace(settings, quiet_start=hours[0], quiet_end=hours[1])
    if option == "digest":
        if value == "off":
            return replace(settings, digest_hour=None)
        hour = _hour(value)
        if hour is None:
            return say("settings.digest_values")
        return replace(settings, digest_hour=hour)
    if option == "positive":
        if value not in ("on", "off"):
            return say("settings.positive_values")
        return replace(settings, positive_only=value == "on")
    return say("settings.unknown_option", option=repr(option[:20]), kinds=", ".join(SIGNAL_KINDS))


from bot.handlers import rule_commands  # noqa: E402, F401  (declares /alert and /alerts on COMMANDS)

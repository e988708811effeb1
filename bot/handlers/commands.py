"""The bot commands, once for every platform: each takes a Caller and arguments and returns a Message."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ai.ask import Asker
from bot.models import Button, Caller, Destination, Message
from bot.outbox import Outbox
from bot.subscriptions import KIND_MODES, LANGUAGES, SIGNAL_KINDS, ChatSettings, Subscriptions
from engine.signals.registry import all_kinds
from presentation.charts import render_chart
from presentation.flow_text import format_flow
from presentation.symbols import resolve_symbol
from storage.feature_store import FeatureStore
from storage.flow_query import FLOW_SPANS_MS, flow_report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandInfo:
    name: str
    description: str
    usage: str = ""
    admin: bool = False


COMMANDS: tuple[CommandInfo, ...] = (
    CommandInfo("start", "Welcome and how to begin"),
    CommandInfo("help", "What Flowbot can do"),
    CommandInfo("subscribe", "Alerts for symbols, optionally only some kinds", "SYMBOL... [kinds]"),
    CommandInfo("unsubscribe", "Stop alerts for symbols (or all)", "SYMBOL... | all"),
    CommandInfo("list", "Your subscriptions"),
    CommandInfo("flow", "Order flow of a symbol", "SYMBOL [5m|15m|1h|4h|24h]"),
    CommandInfo("chart", "Chart of price, whales, CVD and volume", "SYMBOL [5m|15m|1h|4h|24h]"),
    CommandInfo("ask", "Ask about current flow", "QUESTION"),
    CommandInfo("settings", "Severity, kinds, quiet hours, language, digest", "[option value]"),
    CommandInfo("status", "Feed health"),
    CommandInfo("admin", "Users, subscriptions, outbox, providers", admin=True),
    CommandInfo("broadcast", "Send a notice to every chat", "TEXT", admin=True),
)
KIND_ALIASES = {"cvd": "cvd_divergence", "divergence": "cvd_divergence", "whales": "whale", "bursts": "burst"}
QUIET_PRESETS = ("off", "22-7", "0-8")
DIGEST_PRESETS = ("off", "8", "20")


def subscriber_of(caller: Caller) -> Destination:
    """Whose subscriptions a command changes: the chat (and topic), or on Discord the whole server."""
    if caller.destination.platform == "discord" and caller.guild_id:
        return Destination("discord", caller.guild_id)
    return caller.destination


def _hours(text: str) -> tuple[int, int] | None:
    start, _, end = text.partition("-")
    if not (start.isdigit() and end.isdigit()):
        return None
    a, b = int(start), int(end)
    return (a, b) if 0 <= a < 24 and 0 <= b < 24 else None


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

    async def run(self, caller: Caller, name: str, args: list[str]) -> Message:
        """Answer a command by name; unknown commands and failures get a short helpful reply."""
        handler = getattr(self, f"cmd_{name}", None)
        info = next((c for c in COMMANDS if c.name == name), None)
        if handler is None or info is None:
            return Message(f"Unknown command /{name}.", "Send /help to see what I can do.")
        if info.admin and not caller.is_admin:
            return Message("That command is for the bot's admins.")
        try:
            return await handler(caller, args)
        except Exception:
            log.exception("/%s failed", name)
            return Message("Sorry, that did not work.", "Something went wrong on our side; please try again later.")

    def _unknown_symbol(self, text: str) -> Message:
        return Message(f"I don't follow {text[:20]!r}.", f"Symbols I follow: {', '.join(self.symbols)}.")

    def _usage(self, name: str) -> Message:
        info = next(c for c in COMMANDS if c.name == name)
        return Message(f"Usage: /{name} {info.usage}".rstrip(), info.description + ".")

    async def cmd_start(self, caller: Caller, args: list[str]) -> Message:
        self.subscriptions.ensure_chat(subscriber_of(caller), is_private=caller.is_private,
                                       channel_id=self._channel(caller))
        help_message = await self.cmd_help(caller, args)
        return Message("Welcome to Flowbot: order-flow alerts for Binance markets.",
                       f"Start with /subscribe {self.symbols[0]}.\n\n{help_message.body}")

    async def cmd_help(self, caller: Caller, args: list[str]) -> Message:
        lines = [f"/{c.name} {c.usage}".rstrip() + f": {c.description}"
                 for c in COMMANDS if not c.admin or caller.is_admin]
        if caller.destination.platform == "discord":
            lines.append("/alerts here: send this server's alerts to this channel (Manage Channels)")
        lines.append(f"Symbols: {', '.join(self.symbols)}. Kinds: {', '.join(SIGNAL_KINDS)}.")
        lines.extend(f"• {spec.name}: {spec.doc}" for spec in all_kinds())
        return Message("Flowbot commands", "\n".join(lines))

    def _channel(self, caller: Caller) -> str | None:
        return caller.destination.chat_id if caller.destination.platform == "discord" else None

    async def cmd_subscribe(self, caller: Caller, args: list[str]) -> Message:
        if not args:
            return self._usage("subscribe")
        symbols: list[str] = []
        kinds: list[str] = []
        for word in args:
            kind = KIND_ALIASES.get(word.lower(), word.lower())
            if kind in SIGNAL_KINDS:
                kinds.append(kind)
                continue
            symbol = resolve_symbol(word, self.symbols)
            if symbol is None:
                return self._unknown_symbol(word)
            symbols.append(symbol)
        if not symbols:
            return Message("Which symbols?", f"For example: /subscribe {self.symbols[0]} whale")
        key = subscriber_of(caller)
        self.subscriptions.ensure_chat(key, is_private=caller.is_private, channel_id=self._channel(caller))
        self.subscriptions.subscribe(key, symbols, kinds)
        what = ", ".join(kinds) if kinds else "all kinds"
        where = ""
        if key.platform == "discord":
            where = f" in <#{self.subscriptions.alert_channel(key) or caller.destination.chat_id}>"
        return Message(f"Subscribed to {', '.join(symbols)} ({what}){where}.",
                       "Alerts arrive as the market moves; /settings tunes them, /unsubscribe stops them.")

    async def cmd_unsubscribe(self, caller: Caller, args: list[str]) -> Message:
        if not args:
            return self._usage("unsubscribe")
        key = subscriber_of(caller)
        held = [symbol for symbol, _ in self.subscriptions.symbols(key)]
        if [a.lower() for a in args] == ["all"]:
            wanted = held
        else:
            wanted = []
            for word in args:
                symbol = resolve_symbol(word, self.symbols)
                if symbol is None:
                    return self._unknown_symbol(word)
                wanted.append(symbol)
        removed = self.subscriptions.unsubscribe(key, wanted)
        if not removed:
            return Message("You were not subscribed to that.", "See /list for your subscriptions.")
        return Message(f"Unsubscribed from {', '.join(removed)}.")

    async def cmd_list(self, caller: Caller, args: list[str]) -> Message:
        held = self.subscriptions.symbols(subscriber_of(caller))
        if not held:
            return Message("No subscriptions yet.", f"Try /subscribe {self.symbols[0]}.")
        lines = [f"{symbol}: {', '.join(kinds) if kinds else 'all kinds'}" for symbol, kinds in held]
        return Message("Your subscriptions", "\n".join(lines))

    def _symbol_and_span(self, name: str, args: list[str], default: str) -> tuple[str, str] | Message:
        if not args or len(args) > 2:
            return self._usage(name)
        symbol = resolve_symbol(args[0], self.symbols)
        if symbol is None:
            return self._unknown_symbol(args[0])
        span = args[1].lower() if len(args) == 2 else default
        if span not in FLOW_SPANS_MS:
            return Message(f"Unknown window {args[1][:10]!r}.", f"Choose one of {', '.join(FLOW_SPANS_MS)}.")
        return symbol, span

    async def cmd_flow(self, caller: Caller, args: list[str]) -> Message:
        parsed = self._symbol_and_span("flow", args, "1h")
        if isinstance(parsed, Message):
            return parsed
        symbol, span = parsed
        report = flow_report(self.store, symbol, span)
        if report is None:
            return Message(f"No flow stored for {symbol} yet.", "The engine writes it as trades arrive.")
        title, _, body = format_flow(report, self.clock()).partition("\n")
        return Message(title, body)

    async def cmd_chart(self, caller: Caller, args: list[str]) -> Message:
        parsed = self._symbol_and_span("chart", args, "1h")
        if isinstance(parsed, Message):
            return parsed
        symbol, span = parsed
        chart = render_chart(self.store, symbol, span)
        if chart is None:
            return Message(f"No flow stored for {symbol} yet.", "The engine writes it as trades arrive.")
        return Message(f"{symbol}, last {span}", "Price with whale trades marked, CVD, buy and sell volume.",
                       png=chart.png)

    async def cmd_ask(self, caller: Caller, args: list[str]) -> Message:
        if not args:
            return Message("Ask me about the flow.", f"For example: /ask is {self.symbols[0]} being bought?")
        if self.asker is None:
            return Message("Questions are not available here.")
        answer = await self.asker.ask(" ".join(args), user=f"{caller.destination.platform}:{caller.user_id}")
        return Message(answer.text)

    def _settings_message(self, settings: ChatSettings, note: str = "", settings_buttons: bool = True) -> Message:
        quiet = ("off" if settings.quiet_start is None
                 else f"{settings.quiet_start:02d}:00 to {settings.quiet_end:02d}:00 UTC")
        digest = "off" if settings.digest_hour is None else f"{settings.digest_hour:02d}:00 UTC"
        lines = [
            f"Minimum severity: {settings.min_severity}",
            *(f"{kind}: {settings.mode(kind)}" for kind in SIGNAL_KINDS),
            f"Quiet hours (alerts arrive silently): {quiet}",
            f"Language: {'Português' if settings.language == 'pt' else 'English'}",
            f"Daily digest: {digest}",
            "Change them with /settings OPTION VALUE, e.g. /settings severity 2, /settings whale silent,"
            " /settings quiet 22-7, /settings language pt, /settings digest 8"
            + (" (or the buttons below)." if settings_buttons else "."),
        ]
        cycle = {mode: KIND_MODES[(i + 1) % len(KIND_MODES)] for i, mode in enumerate(KIND_MODES)}
        buttons = (
            tuple(Button(f"{'• ' if settings.min_severity == n else ''}severity ≥{n}", f"settings severity {n}")
                  for n in (1, 2, 3)),
            *((Button(f"{kind}: {settings.mode(kind)}", f"settings {kind} {cycle[settings.mode(kind)]}"),)
              for kind in SIGNAL_KINDS),
            (Button("English", "settings language en"), Button("Português", "settings language pt")),
            tuple(Button(f"quiet {p}", f"settings quiet {p}") for p in QUIET_PRESETS),
            tuple(Button(f"digest {p}", f"settings digest {p}") for p in DIGEST_PRESETS),
        )
        return Message(note or "Your alert settings", "\n".join(lines), buttons=buttons if settings_buttons else ())

    async def cmd_settings(self, caller: Caller, args: list[str]) -> Message:
        key = subscriber_of(caller)
        settings = self.subscriptions.ensure_chat(key, is_private=caller.is_private, channel_id=self._channel(caller))
        buttons = caller.destination.platform == "telegram"
        if not args:
            return self._settings_message(settings, settings_buttons=buttons)
        changed = _changed(settings, [a.lower() for a in args])
        if isinstance(changed, str):
            return Message(changed, "For example: /settings severity 2, /settings whale off, /settings quiet off.")
        self.subscriptions.save_settings(key, changed)
        return self._settings_message(changed, "Saved.", settings_buttons=buttons)

    async def on_button(self, caller: Caller, data: str) -> Message:
        """A settings button was pressed: its data is the same text as a /settings command."""
        words = data.split()
        if not words or words[0] != "settings":
            return Message("That button is no longer valid.")
        return await self.cmd_settings(caller, words[1:])

    async def cmd_status(self, caller: Caller, args: list[str]) -> Message:
        snapshot = self.feed_health()
        if snapshot is None:
            return Message("Feed status is not known yet.", "The engine reports it every health check.")
        lines = []
        for symbol, h in snapshot.get("symbols", {}).items():
            seen = h.get("last_trade_age_s")
            age = "no trade yet" if seen is None else f"last trade {seen:.0f} s ago"
            lag = "" if h.get("lag_ms") is None else f", lag {h['lag_ms']} ms"
            lines.append(f"{symbol}: {age}{lag}, gaps {h.get('gaps_found', 0)} found / {h.get('gaps_filled', 0)} "
                         f"filled / {h.get('gaps_unfilled', 0)} unfilled ({h.get('missing_ids', 0)} ids missing)")
        for name, c in snapshot.get("connections", {}).items():
            state = "connected" if c.get("connected") else "disconnected"
            lines.append(f"Connection {name}: {state}, {c.get('reconnects', 0)} reconnects")
        verdict = "healthy" if snapshot.get("healthy", False) else "UNHEALTHY"
        return Message(f"Feed {verdict}", "\n".join(lines) or "No symbols yet.")

    async def cmd_admin(self, caller: Caller, args: list[str]) -> Message:
        counts = self.subscriptions.counts()
        depth = self.outbox.depth()
        states = self.outbox.counts()
        providers = self.provider_health()
        snapshot = self.feed_health()
        lines = [
            f"Chats: {counts['chats']} ({counts['active_chats']} active), subscriptions: {counts['subscriptions']}",
            "Outbox waiting: " + (", ".join(f"{p} {n}" for p, n in sorted(depth.items())) or "0"),
            "Outbox by state: " + (", ".join(f"{s} {n}" for s, n in sorted(states.items())) or "empty"),
            "AI providers: " + (", ".join(f"{p} {s}" for p, s in providers.items()) or "offline explainer only"),
            "Feed: " + ("unknown" if snapshot is None else "healthy" if snapshot.get("healthy") else "UNHEALTHY"),
        ]
        return Message("Flowbot admin", "\n".join(lines))

    async def cmd_broadcast(self, caller: Caller, args: list[str]) -> Message:
        text = " ".join(args).strip()
        if not text:
            return self._usage("broadcast")
        key = f"broadcast:{self.clock():.6f}"
        notice = Message("Notice from Flowbot", text[:3500])
        queued = sum(self.outbox.add_message(d, key, "broadcast", notice) for d in self.subscriptions.all_active())
        self.on_queued()
        return Message(f"Broadcast queued for {queued} chats.")

    async def alerts_here(self, caller: Caller) -> Message:
        """Discord's /alerts here: this server's alerts go to this channel (needs Manage Channels)."""
        if caller.guild_id is None:
            return Message("Use /alerts here in a server channel.")
        if not caller.can_manage_channels:
            return Message("You need the Manage Channels permission for that.")
        key = subscriber_of(caller)
        self.subscriptions.ensure_chat(key, is_private=False, channel_id=caller.destination.chat_id)
        self.subscriptions.set_alert_channel(key, caller.destination.chat_id)
        return Message(f"This server's alerts now arrive in <#{caller.destination.chat_id}>.")


def _changed(settings: ChatSettings, args: list[str]) -> ChatSettings | str:
    """Settings with one option changed, or why the arguments are not understood."""
    if len(args) != 2:
        return "Give one option and its value."
    option, value = args
    option = KIND_ALIASES.get(option, option)
    if option == "severity":
        if value not in {"1", "2", "3"}:
            return "Severity is 1, 2 or 3."
        return replace(settings, min_severity=int(value))
    if option in SIGNAL_KINDS:
        if value not in KIND_MODES:
            return f"A kind is {', '.join(KIND_MODES)}."
        return replace(settings, kind_modes={**settings.kind_modes, option: value})
    if option == "language":
        if value not in LANGUAGES:
            return "Language is en (English) or pt (Português)."
        return replace(settings, language=value)
    if option == "quiet":
        if value == "off":
            return replace(settings, quiet_start=None, quiet_end=None)
        hours = _hours(value)
        if hours is None:
            return "Quiet hours look like 22-7 (UTC hours), or off."
        return replace(settings, quiet_start=hours[0], quiet_end=hours[1])
    if option == "digest":
        if value == "off":
            return replace(settings, digest_hour=None)
        if not value.isdigit() or not 0 <= int(value) < 24:
            return "The digest hour is 0 to 23 (UTC), or off."
        return replace(settings, digest_hour=int(value))
    return f"Unknown option {option[:20]!r}: severity, a kind ({', '.join(SIGNAL_KINDS)}), quiet, language, digest."

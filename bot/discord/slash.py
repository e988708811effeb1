"""The slash commands: one per bot command, with argument hints, symbol autocompletion and window choices,
plus /alerts here. Each hands its arguments as words to a callback; nothing is decided here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import discord
from discord import app_commands
from discord.app_commands import Choice

from bot.handlers.commands import COMMANDS, DIGEST_PRESETS, QUIET_PRESETS
from bot.subscriptions import KIND_MODES, LANGUAGES, SIGNAL_KINDS
from storage.flow_query import FLOW_SPANS_MS

Answer = Callable[[discord.Interaction, str, list[str]], Awaitable[None]]
AlertsHere = Callable[[discord.Interaction], Awaitable[None]]

CHOICES_LIMIT = 25
CHOICE_LENGTH = 100
WINDOWS = [Choice(name=span, value=span) for span in FLOW_SPANS_MS]
SETTING_VALUES: dict[str, tuple[str, ...]] = {
    "severity": ("1", "2", "3"),
    **dict.fromkeys(SIGNAL_KINDS, KIND_MODES),
    "quiet": QUIET_PRESETS,
    "language": LANGUAGES,
    "digest": DIGEST_PRESETS,
}
SETTING_OPTIONS = [Choice(name=option, value=option) for option in SETTING_VALUES]
NO_ARGUMENTS = ("start", "help", "list", "status", "admin")


def words(*values: str | None) -> list[str]:
    """The words of the given option values, in order; missing options add none."""
    return [word for value in values if value for word in value.split()]


def complete(current: str, options: Sequence[str]) -> list[Choice[str]]:
    """Choices that complete the last word typed (by prefix, else by substring), keeping the words before it."""
    head, _, last = current.rpartition(" ")
    prefix = f"{head} " if head else ""
    wanted = last.upper()
    found = [o for o in options if o.upper().startswith(wanted)] or [o for o in options if wanted in o.upper()]
    texts = [prefix + option for option in found[:CHOICES_LIMIT]]
    return [Choice(name=text, value=text) for text in texts if len(text) <= CHOICE_LENGTH]


def _description(name: str) -> str:
    return next(c.description for c in COMMANDS if c.name == name)[:CHOICE_LENGTH]


def _without_arguments(name: str, answer: Answer) -> app_commands.Command:
    async def callback(interaction: discord.Interaction) -> None:
        await answer(interaction, name, [])

    return app_commands.Command(name=name, description=_description(name), callback=callback)


def add_commands(tree: app_commands.CommandTree, symbols: list[str], answer: Answer, here: AlertsHere) -> None:
    """Register every bot command and /alerts here on the tree."""
    for name in NO_ARGUMENTS:
        tree.add_command(_without_arguments(name, answer))

    async def symbol_words(interaction: discord.Interaction, current: str) -> list[Choice[str]]:
        return complete(current, symbols)

    async def symbols_or_all(interaction: discord.Interaction, current: str) -> list[Choice[str]]:
        return complete(current, [*symbols, "all"])

    async def kind_words(interaction: discord.Interaction, current: str) -> list[Choice[str]]:
        return complete(current, SIGNAL_KINDS)

    async def setting_values(interaction: discord.Interaction, current: str) -> list[Choice[str]]:
        return complete(current, SETTING_VALUES.get(interaction.namespace.option or "", ()))

    @tree.command(name="subscribe", description=_description("subscribe"))
    @app_commands.describe(symbols="Symbols, e.g. BTCUSDT ETHUSDT", kinds="Only these kinds, e.g. whale burst")
    @app_commands.autocomplete(symbols=symbol_words, kinds=kind_words)
    async def subscribe(interaction: discord.Interaction, symbols: str, kinds: str | None = None) -> None:
        await answer(interaction, "subscribe", words(symbols, kinds))

    @tree.command(name="unsubscribe", description=_description("unsubscribe"))
    @app_commands.describe(symbols="Symbols, or all")
    @app_commands.autocomplete(symbols=symbols_or_all)
    async def unsubscribe(interaction: discord.Interaction, symbols: str) -> None:
        await answer(interaction, "unsubscribe", words(symbols))

    @tree.command(name="flow", description=_description("flow"))
    @app_commands.describe(symbol="A symbol, e.g. BTCUSDT", window="How far back (default 1h)")
    @app_commands.autocomplete(symbol=symbol_words)
    @app_commands.choices(window=WINDOWS)
    async def flow(interaction: discord.Interaction, symbol: str, window: str | None = None) -> None:
        await answer(interaction, "flow", words(symbol, window))

    @tree.command(name="chart", description=_description("chart"))
    @app_commands.describe(symbol="A symbol, e.g. BTCUSDT", window="How far back (default 1h)")
    @app_commands.autocomplete(symbol=symbol_words)
    @app_commands.choices(window=WINDOWS)
    async def chart(interaction: discord.Interaction, symbol: str, window: str | None = None) -> None:
        await answer(interaction, "chart", words(symbol, window))

    @tree.command(name="ask", description=_description("ask"))
    @app_commands.describe(question="e.g. is BTCUSDT being bought?")
    async def ask(interaction: discord.Interaction, question: str) -> None:
        await answer(interaction, "ask", words(question))

    @tree.command(name="settings", description=_description("settings"))
    @app_commands.describe(option="What to change (leave out to see the settings)", value="Its new value")
    @app_commands.choices(option=SETTING_OPTIONS)
    @app_commands.autocomplete(value=setting_values)
    async def settings(interaction: discord.Interaction, option: str | None = None, value: str | None = None) -> None:
        await answer(interaction, "settings", words(option, value))

    @tree.command(name="broadcast", description=_description("broadcast"))
    @app_commands.describe(text="The notice every chat receives")
    async def broadcast(interaction: discord.Interaction, text: str) -> None:
        await answer(interaction, "broadcast", words(text))

    alerts = app_commands.Group(
        name="alerts", description="Where this server's alerts arrive", guild_only=True,
        default_permissions=discord.Permissions(manage_channels=True),
    )

    @alerts.command(name="here", description="Send this server's alerts to this channel (Manage Channels)")
    async def alerts_here(interaction: discord.Interaction) -> None:
        await here(interaction)

    tree.add_command(alerts)

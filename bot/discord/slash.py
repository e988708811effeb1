"""The slash commands, generated from the command registry: an option per argument with its hint, symbol
autocompletion and window choices; plus /alerts here. Each hands its arguments as words to a callback."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import discord
from discord import app_commands
from discord.app_commands import Choice, Command

from bot.handlers.commands import COMMANDS, DIGEST_PRESETS, QUIET_PRESETS
from bot.handlers.registry import Argument, ArgumentKind, CommandSpec
from bot.rules.metrics import METRICS, SPANS_MS
from bot.subscriptions import KIND_MODES, LANGUAGES, SIGNAL_KINDS
from storage.flow_query import FLOW_SPANS_MS

Answer = Callable[[discord.Interaction, CommandSpec[Any], list[str]], Awaitable[None]]
AlertsHere = Callable[[discord.Interaction], Awaitable[None]]
Completer = Callable[[discord.Interaction[Any], str], Coroutine[Any, Any, list[Choice[str]]]]

CHOICES_LIMIT = 25
CHOICE_LENGTH = 100
WINDOWS = [Choice(name=span, value=span) for span in FLOW_SPANS_MS]
SETTING_VALUES: dict[str, tuple[str, ...]] = {
    "severity": ("1", "2", "3"),
    **dict.fromkeys(SIGNAL_KINDS, KIND_MODES),
    "quiet": QUIET_PRESETS,
    "language": LANGUAGES,
    "digest": DIGEST_PRESETS,
    "positive": ("on", "off"),
}
SETTING_OPTIONS = [Choice(name=option, value=option) for option in SETTING_VALUES]
CHOICES = {ArgumentKind.WINDOW: WINDOWS, ArgumentKind.SETTING_OPTION: SETTING_OPTIONS}


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


def rule_options(position: int, symbols: Sequence[str]) -> list[str]:
    """What may come at this word of an /alert rule: a symbol or an action, a metric, a span or comparison..."""
    if position == 0:
        return [*symbols, "delete", "pause", "resume", "confirm"]
    if position == 1:
        return list(METRICS)
    if position == 2:
        return [*SPANS_MS, ">", "<", "crosses"]
    return [">", "<", "crosses"] if position == 3 else []


def _option(argument: Argument) -> inspect.Parameter:
    """The callback parameter discord.py reads an option from: a string, required or defaulting to None."""
    return inspect.Parameter(
        argument.name, inspect.Parameter.KEYWORD_ONLY,
        annotation=str if argument.required else str | None,
        default=inspect.Parameter.empty if argument.required else None,
    )


def slash_command(spec: CommandSpec[Any], answer: Answer, completers: dict[ArgumentKind, Completer]) -> Command:
    """The slash command of a registered command: an option per argument, with its hint, choices or completion."""

    async def callback(interaction: discord.Interaction, **options: str | None) -> None:
        await answer(interaction, spec, words(*(options.get(a.name) for a in spec.arguments)))

    interaction = inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    annotation=discord.Interaction)
    callback.__signature__ = inspect.Signature([interaction, *map(_option, spec.arguments)])  # type: ignore[attr-defined]
    arguments = spec.arguments
    decorated: Any = app_commands.describe(**{a.name: a.hint for a in arguments})(callback)
    choices = {a.name: CHOICES[a.kind] for a in arguments if a.kind in CHOICES}
    if choices:
        decorated = app_commands.choices(**choices)(decorated)
    completions = {a.name: completers[a.kind] for a in arguments if a.kind in completers}
    if completions:
        decorated = app_commands.autocomplete(**completions)(decorated)
    return Command(name=spec.name, description=spec.summary[:CHOICE_LENGTH], callback=decorated)


def add_commands(tree: app_commands.CommandTree, symbols: Sequence[str], answer: Answer, here: AlertsHere) -> None:
    """Register every bot command and /alerts here on the tree (on Discord the rules are listed by /alert list)."""

    async def symbol_words(interaction: discord.Interaction, current: str) -> list[Choice[str]]:
        return complete(current, symbols)

    async def symbols_or_all(interaction: discord.Interaction, current: str) -> list[Choice[str]]:
        return complete(current, [*symbols, "all"])

    async def kind_words(interaction: discord.Interaction, current: str) -> list[Choice[str]]:
        return complete(current, SIGNAL_KINDS)

    async def setting_values(interaction: discord.Interaction, current: str) -> list[Choice[str]]:
        return complete(current, SETTING_VALUES.get(interaction.namespace.option or "", ()))

    completers: dict[ArgumentKind, Completer] = {
        ArgumentKind.SYMBOL: symbol_words, ArgumentKind.SYMBOLS: symbol_words,
        ArgumentKind.SYMBOLS_OR_ALL: symbols_or_all, ArgumentKind.KINDS: kind_words,
        ArgumentKind.SETTING_VALUE: setting_values,
    }
    async def rule_words(interaction: discord.Interaction, current: str) -> list[Choice[str]]:
        return complete(current, rule_options(current.count(" "), symbols))

    completers[ArgumentKind.RULE] = rule_words
    for spec in COMMANDS:
        if spec.name != "alerts":  # Discord's /alerts is the group below (/alerts here); rules: /alert list
            tree.add_command(slash_command(spec, answer, completers))

    alerts = app_commands.Group(
        name="alerts", description="Where this server's alerts arrive", guild_only=True,
        default_permissions=discord.Permissions(manage_channels=True),
    )

    @alerts.command(name="here", description="Send this server's alerts to this channel (Manage Channels)")
    async def alerts_here(interaction: discord.Interaction) -> None:
        await here(interaction)

    tree.add_command(alerts)

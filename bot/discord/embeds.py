"""Messages as Discord embeds, coloured by direction and cut to Discord's limits; a chart as the embed's image."""

from __future__ import annotations

import io
from typing import Any

import discord

from bot.models import Message

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
EMBED_TOTAL_LIMIT = 6000
CHART_FILENAME = "chart.png"
COLOURS = {"buy": discord.Colour.green(), "sell": discord.Colour.red(), "neutral": discord.Colour.light_grey()}


def clip(text: str, limit: int) -> str:
    """The text, or as much as fits in `limit` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def colour_of(direction: str | None) -> discord.Colour:
    """Green for buying, red for selling, grey for neutral alerts, blurple for replies."""
    return COLOURS.get(direction or "", discord.Colour.blurple())


def embed_of(message: Message) -> discord.Embed:
    """The message as one embed within the title, description and total limits."""
    title = clip(message.title.replace("\n", " "), TITLE_LIMIT)
    description = clip(message.body, min(DESCRIPTION_LIMIT, EMBED_TOTAL_LIMIT - len(title)))
    embed = discord.Embed(title=title, description=description or None, colour=colour_of(message.direction))
    if message.png is not None:
        embed.set_image(url=f"attachment://{CHART_FILENAME}")
    return embed


def send_kwargs(message: Message) -> dict[str, Any]:
    """The embed, and the chart as the attachment it shows: the keyword arguments of a send."""
    kwargs: dict[str, Any] = {"embed": embed_of(message)}
    if message.png is not None:
        kwargs["file"] = discord.File(io.BytesIO(message.png), CHART_FILENAME)
    return kwargs

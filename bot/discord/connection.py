"""Where discord.py connects: its REST base and first gateway are process-wide class attributes, moved here."""

from __future__ import annotations

from dataclasses import dataclass

import discord
import yarl
from discord.gateway import DiscordWebSocket

DEFAULT_API_BASE = "https://discord.com/api/v10"


@dataclass(frozen=True)
class Endpoints:
    """discord.py's REST base (with /api/v10) and the gateway it connects to first."""

    api_base: str
    gateway: yarl.URL


def current_endpoints() -> Endpoints:
    return Endpoints(discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)


def point_discord_at(api_base: str, gateway: str | None) -> Endpoints:
    """Send discord.py's REST calls (webhooks too) to api_base and, if given, its first connection to gateway;
    returns the endpoints it had before, for restore_endpoints."""
    previous = current_endpoints()
    discord.http.Route.BASE = api_base.rstrip("/")
    if gateway:
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
    return previous


def restore_endpoints(endpoints: Endpoints) -> None:
    discord.http.Route.BASE = endpoints.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = endpoints.gateway


async def discover_gateway(http: discord.http.HTTPClient) -> None:
    """Connect to the gateway the REST base names (GET /gateway/bot): for an API proxy without a gateway setting."""
    _, url, _ = await http.get_bot_gateway()
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)

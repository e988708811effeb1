"""The event bus named by BUS_URL: memory:// (one process, the default) or redis:// / rediss:// (Redis Streams)."""

from __future__ import annotations

from urllib.parse import urlsplit

from engine.bus import EventBus, InMemoryBus
from engine.bus_redis import RedisStreamsBus


def make_bus(url: str, queue_size: int) -> EventBus:
    """The bus for `url`, each subscriber's local queue holding up to `queue_size` events."""
    scheme = urlsplit(url.strip()).scheme.lower() if "://" in url else ""
    if scheme == "memory":
        return InMemoryBus(default_maxsize=queue_size)
    if scheme in ("redis", "rediss"):
        return RedisStreamsBus(url.strip(), default_maxsize=queue_size)
    got = f"{scheme}://" if scheme else "a URL without a scheme"
    raise ValueError(f"BUS_URL must be memory:// (in-process) or redis:// / rediss:// (Redis Streams), not {got}")

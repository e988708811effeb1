"""The health server: /healthz (alive), /readyz (ready for traffic) and /metrics (Prometheus) on HEALTH_HOST:PORT.

More routes (the dashboard) can join through `app` or `add_routes` before start().
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from aiohttp import web

from core.health import FeedHealth
from core.metrics import Metrics
from core.settings import Settings
from core.store_health import StoreHealth

Ready = Callable[[], tuple[bool, dict[str, Any]]]  # (ready, details shown by /readyz)
STALL_INTERVALS = 3  # a connection whose last message is older than this many HEALTH_CHECK_INTERVALs is stalled


def feed_ready(health: FeedHealth, settings: Settings, clock: Callable[[], float] = time.time) -> Ready:
    """Ready when the feed has connections, each connected, each with a message in the last 3 health intervals."""
    limit = STALL_INTERVALS * settings.health_check_interval

    def ready() -> tuple[bool, dict[str, Any]]:
        now = clock()
        connections = {name: _connection_problem(c.connected, c.last_message_at, c.last_error, now, limit)
                       for name, c in health.connections.items()}
        details: dict[str, Any] = {
            "connections": {name: {"ready": problem is None, "reason": problem or "ok"}
                            for name, problem in connections.items()}
        }
        if not connections:
            details["reason"] = "the feed has no connection yet"
        return bool(connections) and all(p is None for p in connections.values()), details

    return ready


def _connection_problem(
    connected: bool, last_message_at: float | None, last_error: str | None, now: float, limit: float
) -> str | None:
    if not connected:
        return "not connected" + (f" (last error: {last_error})" if last_error else "")
    if last_message_at is None:
        return "connected, but no message yet"
    age = now - last_message_at
    if age > limit:
        return f"stalled: last message {age:.0f} s ago (limit {limit:.0f} s, 3 x HEALTH_CHECK_INTERVAL)"
    return None


def store_ready(health: StoreHealth) -> Ready:
    """Ready while every store can write; otherwise each failing store's reason, since when, rows kept."""

    def ready() -> tuple[bool, dict[str, Any]]:
        problems = health.problems()
        stores = {name: {"ready": False, "reason": p.reason, "failing_for_s": round(time.time() - p.since, 1),
                         "pending_rows": p.pending} for name, p in problems.items()}
        return not problems, {"stores": stores or "ok"}

    return ready


def started_ready(name: str, started: asyncio.Event) -> Ready:
    """Ready once `started` is set (e.g. after BotService.start() returned: the adapters are up)."""

    def ready() -> tuple[bool, dict[str, Any]]:
        return started.is_set(), {name: "started" if started.is_set() else "starting"}

    return ready


def all_ready(*checks: Ready) -> Ready:
    """Ready when every check is; the details of all of them."""

    def ready() -> tuple[bool, dict[str, Any]]:
        results = [check() for check in checks]
        details: dict[str, Any] = {}
        for _, detail in results:
            details.update(detail)
        return all(ok for ok, _ in results), details

    return ready


class HealthServer:
    """aiohttp server for probes and scrapes; `port` is the bound port once started (HEALTH_PORT=0: a free one)."""

    def __init__(self, settings: Settings, metrics: Metrics, ready: Ready) -> None:
        self.host = settings.health_host
        self.requested_port = settings.health_port
        self.metrics = metrics
        self.ready = ready
        self.app = web.Application()
        self.app.add_routes([
            web.get("/healthz", self._healthz),
            web.get("/readyz", self._readyz),
            web.get("/metrics", self._metrics),
        ])
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    def add_routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        """More routes on the same server; before start()."""
        self.app.add_routes(routes)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("HealthServer is not started")
        return self._port

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.requested_port).start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._port = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, details = self.ready()
        return web.json_response({"ready": ready, **details}, status=200 if ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})


@contextlib.asynccontextmanager
async def serving_health(
    settings: Settings, metrics: Metrics, ready: Ready, routes: Iterable[web.AbstractRouteDef] = ()
) -> AsyncIterator[HealthServer]:
    """/healthz, /readyz and /metrics (and `routes`: the dashboard) on HEALTH_HOST:HEALTH_PORT while the body runs."""
    server = HealthServer(settings, metrics, ready)
    server.add_routes(routes)
    try:
        await server.start()
    except OSError as exc:
        raise HealthPortError(settings, exc) from exc
    print(f"flowbot: /healthz, /readyz and /metrics on http://{settings.health_host}:{server.port}/", flush=True)
    try:
        yield server
    finally:
        await server.stop()


class HealthPortError(Exception):
    def __init__(self, settings: Settings, exc: OSError) -> None:
        super().__init__(f"cannot serve health checks on {settings.health_host}:{settings.health_port} "
                         f"({exc.strerror or exc}); set HEALTH_PORT to a free port (0 picks one)")

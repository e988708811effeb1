"""The web dashboard: pages and a Server-Sent Events stream on the health server, fed live from the event bus."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import socket
from pathlib import Path

from aiohttp import web

from core.events import Event, FeedHealthReport, Signal, WindowClosed
from dashboard import pages
from dashboard.alerts import AlertFeed
from dashboard.auth import Auth, Handler
from dashboard.broadcast import Broadcaster, sse
from dashboard.config import DashboardConfig
from dashboard.hosts import allowed_hosts, checking_host
from dashboard.login_throttle import LoginThrottle
from dashboard.state import FeedHealthSource, LiveState
from engine.analysis.context import SymbolContext
from engine.bus import EventBus, Subscription
from presentation.track_record_text import record_lines
from storage.feature_store import FeatureStore
from storage.track_record import TrackRecords

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0  # an SSE comment this often: a page that went away is noticed
ALERTS_SHOWN = 100
SYMBOL_ALERTS_SHOWN = 20
INDEX_ALERTS_SHOWN = 10


def subscription_name() -> str:
    """Each dashboard process reads every event: a consumer group of its own on Redis Streams."""
    return f"dashboard-{socket.gethostname()}"


class Dashboard:
    """Pages at /, /symbol/SYM, /alerts, /stats (and /login, /events): routes() joins them to a HealthServer, run()
    follows the bus."""

    def __init__(
        self, config: DashboardConfig, bus: EventBus, *, store: FeatureStore, signal_db_path: Path,
        feed_health: FeedHealthSource | None = None, name: str | None = None,
        contexts: dict[str, SymbolContext] | None = None,
    ) -> None:
        """feed_health and contexts: the engine's own, when it runs in this process."""
        self.store = store
        self.signal_db_path = signal_db_path
        self.state = LiveState(list(config.symbols), feed_health, contexts)
        self.alerts = AlertFeed(signal_db_path)
        self.auth = Auth(config.token)
        self.throttle = LoginThrottle()
        self.hosts = allowed_hosts(config.allowed_hosts, config.health_host)
        self.broadcaster = Broadcaster()
        if not self.auth.required and not _loopback(config.health_host):
            log.warning("the dashboard on %s has no DASHBOARD_TOKEN: anyone who reaches it sees subscribers' activity",
                        config.health_host)
        self.ready = asyncio.Event()  # the stored state is loaded: the cards show numbers
        self.events: Subscription = bus.subscribe(
            WindowClosed, Signal, FeedHealthReport, name=name or subscription_name(), maxsize=config.bus_queue_size
        )

    def routes(self) -> list[web.RouteDef]:
        def guard(handler: Handler, denied: Handler) -> Handler:
            return checking_host(self.hosts, self.auth.guard(handler, denied))

        def open_page(handler: Handler) -> Handler:
            return checking_host(self.hosts, handler)

        return [
            web.get("/", guard(self._index, self._login_form)),
            web.get("/events", guard(self._events, _unauthorized)),
            web.get("/alerts", guard(self._alerts, self._login_form)),
            web.get("/stats", guard(self._stats, self._login_form)),
            web.get("/symbol/{symbol}", guard(self._symbol, self._login_form)),
            web.get("/symbol/{symbol}/chart.png", guard(self._chart, _unauthorized)),
            web.get("/login", open_page(self._login_form)),
            web.post("/login", open_page(self._log_in)),
            web.get("/logout", open_page(self._log_out)),
            web.post("/logout", open_page(self._log_out)),
        ]

    async def run(self) -> None:
        """Follow the bus until cancelled or it closes: state first from the store, then live; pages are updated."""
        try:
            await asyncio.to_thread(self.state.seed, self.store)
            self.ready.set()
            for card in self.state.cards():
                self.broadcaster.send("card", card.as_json())
            async for event in self.events:
                changed = self._apply(event)
                while True:  # what is already queued first, then the cards once: a fast replay is not sent per window
                    try:
                        changed |= self._apply(self.events.get_nowait())
                    except IndexError:
                        break
                for card in self.state.cards(changed):  # one health snapshot for all of them, not one per card
                    self.broadcaster.send("card", card.as_json())
                await asyncio.sleep(0)
        finally:
            self.broadcaster.close()

    def close(self) -> None:
        self.broadcaster.close()
        self.alerts.close()

    def _apply(self, event: Event) -> set[str]:
        if isinstance(event, Signal):
            self.broadcaster.send("alert", pages.alert_json(self.alerts.row(event)))
            return set()
        if isinstance(event, WindowClosed | FeedHealthReport):
            return self.state.apply(event)
        return set()

    async def _index(self, request: web.Request) -> web.Response:
        return _html(pages.index_page(self.state.cards(), self.alerts.recent(limit=INDEX_ALERTS_SHOWN)))

    async def _symbol(self, request: web.Request) -> web.Response:
        symbol = _symbol(request.match_info["symbol"])
        span = _span(request)
        has_chart = await asyncio.to_thread(self.store.latest_window_end, symbol) is not None
        rows = self.alerts.recent(symbol, limit=SYMBOL_ALERTS_SHOWN)
        return _html(pages.symbol_page(self.state.card(symbol), span, has_chart, rows))

    async def _chart(self, request: web.Request) -> web.Response:
        symbol = _symbol(request.match_info["symbol"])
        from presentation.charts import render_chart  # matplotlib (~37 MB) only once a chart is asked for

        chart = await asyncio.to_thread(render_chart, self.store, symbol, _span(request))
        if chart is None:
            raise web.HTTPNotFound(text=f"no stored windows for {symbol}")
        return web.Response(body=chart.png, content_type="image/png", headers={"Cache-Control": "no-store"})

    async def _alerts(self, request: web.Request) -> web.Response:
        query = request.query
        symbol = query.get("symbol", "").strip().upper()
        kind = query.get("kind", "").strip()
        severity = query.get("severity", "1")
        min_severity = int(severity) if severity in ("1", "2", "3") else 1
        if symbol and not (symbol.isascii() and symbol.isalnum()):
            raise web.HTTPBadRequest(text="symbol must be letters and digits")
        rows = self.alerts.recent(symbol or None, kind or None, min_severity, limit=ALERTS_SHOWN)
        symbols = sorted(set(self.state.symbols()) | ({symbol} if symbol else set()))
        return _html(pages.alerts_page(rows, symbols, symbol, kind, min_severity))

    async def _stats(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "").strip().upper()
        if symbol and not (symbol.isascii() and symbol.isalnum()):
            raise web.HTTPBadRequest(text="symbol must be letters and digits")
        lines = await asyncio.to_thread(self._record_lines, symbol or None)
        symbols = sorted(set(self.state.symbols()) | ({symbol} if symbol else set()))
        return _html(pages.stats_page(lines, symbols, symbol))

    def _record_lines(self, symbol: str | None) -> list[str]:
        """The track records, measured first (a connection of its own: runs in a worker thread)."""
        records = TrackRecords(self.signal_db_path, self.store)
        try:
            for name in [symbol] if symbol else self.store.symbols():
                records.update(name)
            return record_lines(records.records(symbol))
        finally:
            records.close()

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no",
        })
        await response.prepare(request)
        with self.broadcaster.listen() as queue:
            for card in self.state.cards():
                await response.write(sse("card", card.as_json()))
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    message = b": keepalive\n\n"
                if message is None:
                    break
                await response.write(message)
        return response

    async def _login_form(self, request: web.Request) -> web.Response:
        if not self.auth.required:
            raise web.HTTPSeeOther(_next_path(request))
        status = 200 if request.path == "/login" else 401
        return _html(pages.login_page(_next_path(request)), status=status)

    async def _log_in(self, request: web.Request) -> web.Response:
        address = request.remote or ""
        wait_s = self.throttle.wait_s(address)
        if wait_s > 0:  # the token is not even looked at: guessing costs time
            return _html(pages.login_page(_next_path(request), f"Too many wrong tokens: try again in "
                                                               f"{math.ceil(wait_s)} s."),
                         status=429, headers={"Retry-After": str(math.ceil(wait_s))})
        form = await request.post()
        token = form.get("token")
        if not self.auth.required or (isinstance(token, str) and self.auth.token_matches(token)):
            self.throttle.succeeded(address)
            response = web.HTTPSeeOther(_next_path(request))
            self.auth.log_in(request, response)
            raise response
        self.throttle.failed(address)
        return _html(pages.login_page(_next_path(request), "That token is not the dashboard's."), status=401)

    async def _log_out(self, request: web.Request) -> web.Response:
        response = web.HTTPSeeOther("/login")
        self.auth.log_out(request, response)
        raise response


def _html(text: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8",
                        headers={**(headers or {}), "Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                 "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; "
                                                            "script-src 'unsafe-inline'; img-src 'self'"})


async def _unauthorized(request: web.Request) -> web.Response:
    return web.Response(status=401, text="401: the dashboard needs its token (Authorization: Bearer, or /login)",
                        headers={"WWW-Authenticate": 'Bearer realm="flowbot dashboard"'})


def _symbol(text: str) -> str:
    symbol = text.strip().upper()
    if not symbol or not symbol.isascii() or not symbol.isalnum():
        raise web.HTTPNotFound(text="not a symbol")
    return symbol


def _span(request: web.Request) -> str:
    span = request.query.get("range", "1h")
    if span not in pages.CHART_RANGES:
        raise web.HTTPBadRequest(text=f"range must be one of {', '.join(pages.CHART_RANGES)}")
    return span


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _next_path(request: web.Request) -> str:
    """Where to go after signing in: a path on this site only."""
    wanted = request.query.get("next") or (request.path_qs if request.path != "/login" else "/")
    return wanted if _same_site_path(wanted) else "/"


def _same_site_path(path: str) -> bool:
    """A path on this site: browsers drop tabs and newlines from a URL (`/%09/evil.example` is `//evil.example`)
    and read `\\` as `/`, so a path holding any of them, or a control character or a space, is not one."""
    return (path.startswith("/") and not path.startswith("//") and path.isascii()
            and all(32 < ord(c) < 127 and c != "\\" for c in path))


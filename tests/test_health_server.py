"""The health server over real HTTP: liveness, readiness of a feed's connections, and the Prometheus text."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from ai.providers import Attempt
from bot.database import open_database
from bot.delivery import Dispatcher
from bot.models import Destination, Message
from bot.outbox import Outbox
from bot.rules.grammar import RuleSpec
from bot.rules.metrics import Op
from bot.rules.service import RuleService
from bot.subscriptions import Subscriptions
from core.events import PriceTick, Signal
from core.health import ConnectionHealth, FeedHealth
from core.health_server import HealthServer, all_ready, feed_ready, started_ready
from core.metrics import Metrics
from core.settings import Settings

SETTINGS = Settings(_env_file=None, HEALTH_PORT=0, HEALTH_CHECK_INTERVAL=10)


class NoSender:
    platform = "telegram"

    async def send(self, destination: Destination, message: Message) -> str:
        raise AssertionError("not sending in this test")

    async def edit(self, destination: Destination, message_id: str, message: Message) -> None:
        raise AssertionError("not editing in this test")


def feed_health(*, connected: bool = True, age: float = 1.0) -> FeedHealth:
    health = FeedHealth()
    btc = health.symbol("BTCUSDT")
    btc.messages, btc.trades, btc.gaps_found, btc.gaps_filled, btc.gaps_unfilled = 120, 118, 3, 2, 1
    btc.last_receive_at, btc.last_event_time_ms = 1_700_000_000.25, 1_700_000_000_000
    eth = health.symbol("ETHUSDT")
    eth.messages, eth.trades = 40, 40
    health.connections["conn-0"] = ConnectionHealth(
        "conn-0", 2, connected=connected, last_message_at=time.time() - age, reconnects=4,
        last_error=None if connected else "ConnectionResetError",
    )
    return health


async def get(server: HealthServer, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{server.port}{path}") as response:
        return response.status, response.headers["Content-Type"], await response.text()


@pytest.fixture
async def serve() -> AsyncIterator:
    servers: list[HealthServer] = []

    async def start(ready, metrics: Metrics | None = None) -> HealthServer:
        server = HealthServer(SETTINGS, metrics or Metrics(), ready)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


async def test_healthz_answers_while_alive(serve) -> None:
    server = await serve(feed_ready(FeedHealth(), SETTINGS))
    status, _, body = await get(server, "/healthz")
    assert status == 200
    assert "alive" in body


async def test_readyz_ready_with_a_connected_fresh_feed(serve) -> None:
    server = await serve(feed_ready(feed_health(), SETTINGS))
    status, content_type, body = await get(server, "/readyz")
    assert status == 200
    assert content_type.startswith("application/json")
    assert '"ready":true' in body.replace(" ", "")


@pytest.mark.parametrize(("make_health", "reason"), [
    (lambda: feed_health(connected=False), "not connected (last error: ConnectionResetError)"),
    (lambda: feed_health(age=100.0), "stalled: last message 100 s ago (limit 30 s"),
    (FeedHealth, "the feed has no connection yet"),
])
async def test_readyz_not_ready_says_which_connection_and_why(
    serve, make_health: Callable[[], FeedHealth], reason: str
) -> None:
    server = await serve(feed_ready(make_health(), SETTINGS))
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{server.port}/readyz") as response:
        assert response.status == 503
        body = await response.json()
    assert body["ready"] is False
    reasons = [c["reason"] for c in body["connections"].values()] + [body.get("reason", "")]
    assert any(r.startswith(reason) for r in reasons), body


async def test_readyz_of_a_bot_process_waits_for_its_adapters(serve) -> None:
    started = asyncio.Event()
    server = await serve(all_ready(started_ready("bots", started)))
    assert (await get(server, "/readyz"))[0] == 503
    started.set()
    status, _, body = await get(server, "/readyz")
    assert status == 200
    assert '"bots":"started"' in body.replace(" ", "")


async def test_more_routes_join_the_same_server(serve) -> None:
    server = HealthServer(SETTINGS, Metrics(), feed_ready(FeedHealth(), SETTINGS))

    async def dashboard(request: web.Request) -> web.Response:
        return web.Response(text="dashboard")

    server.add_routes([web.get("/", dashboard)])
    await server.start()
    try:
        assert (await get(server, "/"))[2] == "dashboard"
    finally:
        await server.stop()


def signal(symbol: str, kind: str) -> Signal:
    return Signal(id=f"{symbol}-{kind}", symbol=symbol, kind=kind, direction="buy", severity=2, window_start=0,
                  window_end=5000)


async def test_metrics_expose_every_source_with_labels(serve, tmp_path: Path) -> None:
    db = open_database(tmp_path / "flowbot.db")
    outbox = Outbox(db, 30.0)
    for n in range(3):
        outbox.add_message(Destination("telegram", str(n)), "digest", "digest", Message("digest"))
    outbox.add_message(Destination("discord", "7"), "digest", "digest", Message("digest"))
    dispatcher = Dispatcher(NoSender(), outbox, Subscriptions(db))
    dispatcher.stats.update(sent=9, failed=2, gone=1, retried=5)
    metrics = Metrics()
    metrics.watch_feed(feed_health())
    metrics.watch_dispatchers({"telegram": dispatcher})
    metrics.watch_outbox(outbox)
    rules_db = open_database(tmp_path / "rules.db")  # its firings stay out of the outbox counted above
    rules = RuleService(rules_db, Outbox(rules_db, 30.0), Subscriptions(rules_db))
    for level in (90_000, 95_000):
        rules.create(Destination("telegram", "1"), Destination("telegram", "1"), "1",
                     RuleSpec("BTCUSDT", "price", None, Op.ABOVE, Decimal(level)))
    rules.on_event(PriceTick("BTCUSDT", 9_100_000_000_000, 9_100_000_000_000, 9_100_000_000_000, 9_100_000_000_000,
                             1_000, 1, 1))
    metrics.watch_rules(rules)
    for s in (signal("BTCUSDT", "whale"), signal("BTCUSDT", "whale"), signal("ETHUSDT", "burst")):
        metrics.count_signal(s)
    metrics.record_ai([
        Attempt("groq", "timeout", 15.0), Attempt("groq", "ok", 0.8),
        Attempt("dashscope", "rejected:ungrounded number 42", 1.1), Attempt("openai", "circuit_open", 0),
    ])
    server = await serve(feed_ready(FeedHealth(), SETTINGS), metrics)

    status, content_type, text = await get(server, "/metrics")

    assert status == 200
    assert content_type.startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("flowbot_messages_total", symbol="BTCUSDT") == 120
    assert value("flowbot_messages_total", symbol="ETHUSDT") == 40
    assert value("flowbot_trades_total", symbol="BTCUSDT") == 118
    assert value("flowbot_gaps_total", symbol="BTCUSDT", state="found") == 3
    assert value("flowbot_gaps_total", symbol="BTCUSDT", state="filled") == 2
    assert value("flowbot_gaps_total", symbol="BTCUSDT", state="unfilled") == 1
    assert value("flowbot_reconnects_total", connection="conn-0") == 4
    assert value("flowbot_receive_lag_seconds", symbol="BTCUSDT") == pytest.approx(0.25)
    assert value("flowbot_feed_connected", connection="conn-0") == 1
    assert value("flowbot_signals_total", symbol="BTCUSDT", kind="whale") == 2
    assert value("flowbot_signals_total", symbol="ETHUSDT", kind="burst") == 1
    assert value("flowbot_alerts_sent_total", platform="telegram") == 9
    assert value("flowbot_alerts_failed_total", platform="telegram", reason="rejected") == 2
    assert value("flowbot_alerts_failed_total", platform="telegram", reason="gone") == 1
    assert value("flowbot_outbox_depth", platform="telegram") == 3
    assert value("flowbot_outbox_depth", platform="discord") == 1
    assert value("flowbot_alert_rules") == 2
    assert value("flowbot_alert_rule_judge_seconds_total") == rules.busy_s > 0
    assert value("flowbot_ai_requests_total", provider="groq", outcome="timeout") == 1
    assert value("flowbot_ai_requests_total", provider="groq", outcome="ok") == 1
    assert value("flowbot_ai_requests_total", provider="dashscope", outcome="rejected") == 1
    assert value("flowbot_ai_requests_total", provider="openai", outcome="circuit_open") == 1
    assert value("flowbot_ai_latency_seconds_count", provider="groq") == 2
    assert value("flowbot_ai_latency_seconds_sum", provider="groq") == pytest.approx(15.8)
    assert ("flowbot_ai_latency_seconds_count", (("provider", "openai"),)) not in samples
    for name in ("flowbot_messages_total", "flowbot_trades_total", "flowbot_gaps_total", "flowbot_reconnects_total",
                 "flowbot_receive_lag_seconds", "flowbot_signals_total", "flowbot_alerts_sent_total",
                 "flowbot_alerts_failed_total", "flowbot_outbox_depth", "flowbot_ai_requests_total",
                 "flowbot_ai_latency_seconds_bucket"):
        assert f"\n{name}{{" in text, name
    db.close()


def test_two_metrics_objects_do_not_collide() -> None:
    first, second = Metrics(), Metrics()
    first.count_signal(signal("BTCUSDT", "whale"))
    assert b'flowbot_signals_total{kind="whale",symbol="BTCUSDT"} 1.0' in first.render()[0]
    assert b"flowbot_signals_total{" not in second.render()[0]

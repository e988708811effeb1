"""The dashboard over real HTTP: cards from the real BTCUSDT dump, the symbol page and chart, the alerts feed, the
token, and the live event stream."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import re
import shutil
from collections.abc import AsyncIterator
from decimal import Decimal
from html import unescape
from pathlib import Path

import aiohttp
import orjson
import pytest
from expected_flow import load_csv
from rich.console import Console

from bot.database import open_database
from core.events import Signal, WindowClosed
from core.features import PRICE_SCALE
from core.health_server import HealthServer
from core.metrics import Metrics
from core.settings import Settings
from dashboard.app import Dashboard
from dashboard.state import stored_windows
from engine.bus import InMemoryBus
from engine.bus_factory import make_bus
from flowbot.cli import main as cli_main
from flowbot.dashboard_config import dashboard_config
from flowbot.processes import run_dashboard
from flowbot.replay import replay
from storage.feature_store import FeatureStore
from storage.signal_store import SignalStore

TOKEN = "dashboard-test-token-7f3a"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
WINDOW_MS = 5_000
STREAM_TIMEOUT_S = 20  # a guard against a hang, not a timing assertion


@dataclasses.dataclass
class Served:
    url: str
    dashboard: Dashboard
    bus: InMemoryBus


@contextlib.asynccontextmanager
async def serving_dashboard(settings: Settings, bus: InMemoryBus) -> AsyncIterator[Served]:
    """A dashboard on a health server at a free port, following `bus`, with its stored state loaded."""
    data_dir = Path(settings.data_dir)
    dashboard = Dashboard(dashboard_config(settings), bus, store=FeatureStore(data_dir),
                          signal_db_path=data_dir / "flowbot.db", name="dashboard-test")
    server = HealthServer(settings, Metrics(), lambda: (True, {}))
    server.add_routes(dashboard.routes())
    await server.start()
    following = asyncio.create_task(dashboard.run())
    try:
        await asyncio.wait_for(dashboard.ready.wait(), STREAM_TIMEOUT_S)
        yield Served(f"http://127.0.0.1:{server.port}", dashboard, bus)
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await server.stop()
        dashboard.close()


def dashboard_settings(data_dir: Path, token: str | None = TOKEN) -> Settings:
    return Settings(_env_file=None, SYMBOLS="BTCUSDT", DATA_DIR=str(data_dir), HEALTH_HOST="127.0.0.1",
                    HEALTH_PORT="0", DASHBOARD_TOKEN=token or "")


@pytest.fixture
def data_dir(btc_data_dir: Path, tmp_path: Path) -> Path:
    """A copy of the replayed BTCUSDT store and signals: the tests annotate it."""
    copy = tmp_path / "data"
    shutil.copytree(btc_data_dir, copy)
    return copy


@pytest.fixture
async def served(data_dir: Path) -> AsyncIterator[Served]:
    async with serving_dashboard(dashboard_settings(data_dir), InMemoryBus()) as served:
        yield served


def field(html: str, name: str) -> str:
    found = re.search(rf'data-field="{name}">([^<]*)<', html)
    assert found is not None, name
    return found.group(1)


def alert_ids(html: str) -> list[str]:
    return re.findall(r'<li class="alert sev-\d" data-id="([^"]+)"', html)


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, await response.text()


def q(value: Decimal, signed: bool = False) -> str:
    value = value.quantize(Decimal("0.0001"))
    return f"{value:+,f}" if signed else f"{value:,f}"


async def test_cards_show_the_flow_of_the_real_dump(served: Served, shared_data: Path) -> None:
    rows = load_csv(shared_data / "BTCUSDT-aggTrades-2026-01-01.csv")
    end = rows[-1]["T"] // WINDOW_MS * WINDOW_MS + WINDOW_MS
    buy = sum(r["q"] for r in rows if not r["m"])
    sell = sum(r["q"] for r in rows if r["m"])
    last_5m = [r for r in rows if r["T"] // WINDOW_MS * WINDOW_MS >= end - 300_000]
    delta_5m = sum(r["q"] if not r["m"] else -r["q"] for r in last_5m)

    status, html = await get(served.url + "/", BEARER)

    assert status == 200
    assert 'id="card-BTCUSDT"' in html
    assert field(html, "price") == f"{rows[-1]['p'].normalize():,f}"
    assert field(html, "trades") == f"{len(rows):,}"  # the dump is 12 minutes: all of it is in the last hour
    assert field(html, "buy_volume") == q(buy)
    assert field(html, "sell_volume") == q(sell)
    assert field(html, "buy_share") == f"{(buy * 100 / (buy + sell)).quantize(Decimal('0.1'))}% buy"
    assert field(html, "delta_1h") == q(buy - sell, signed=True)
    assert field(html, "cvd") == q(buy - sell, signed=True)  # one UTC day
    assert field(html, "delta_5m") == q(delta_5m, signed=True)
    assert field(html, "whales") == f"{sum(r['p'] * r['q'] >= 20_000 for r in rows):,}"
    assert field(html, "burst") in ("calm",) or field(html, "burst").startswith("burst x")
    assert '<meta name="viewport"' in html and "new EventSource(\"/events\")" in html
    assert "http://" not in html.replace(served.url, "") and "https://" not in html  # nothing from elsewhere


async def test_feed_health_shows_on_the_card(data_dir: Path) -> None:
    snapshot = {"symbols": {"BTCUSDT": {"last_trade_age_s": 0.4, "lag_ms": 1234, "gaps_found": 2,
                                        "gaps_unfilled": 0, "missing_ids": 7}}}
    settings = dashboard_settings(data_dir)
    bus = InMemoryBus()
    dashboard = Dashboard(dashboard_config(settings), bus, store=FeatureStore(data_dir),
                          signal_db_path=data_dir / "flowbot.db", feed_health=lambda: snapshot)
    try:
        card = dashboard.state.card("BTCUSDT")
    finally:
        dashboard.close()
    assert card.fields["last_trade_age"] == "0.4 s"
    assert card.fields["lag"] == "1,234 ms"
    assert card.fields["gaps"] == "2 found, 0 unfilled, 7 ids missing"
    assert card.health == "ok"


async def test_symbol_page_shows_the_chart_and_explained_signals(served: Served, data_dir: Path) -> None:
    store = SignalStore(data_dir / "flowbot.db")
    try:
        signal = store.recent("BTCUSDT", limit=1)[0]
        store.set_explanation(signal.id, "<b>Big</b> buyer & co lifted the offer", "groq")
    finally:
        store.close()

    status, html = await get(served.url + "/symbol/BTCUSDT?range=15m", BEARER)

    assert status == 200
    assert '<img class="chart" src="/symbol/BTCUSDT/chart.png?range=15m"' in html
    assert "&lt;b&gt;Big&lt;/b&gt; buyer &amp; co lifted the offer" in html and "<b>Big</b>" not in html
    assert "explained by groq" in html
    assert signal.id in alert_ids(html)
    async with aiohttp.ClientSession(headers=BEARER) as session:
        for span in ("15m", "1h", "4h", "24h"):
            async with session.get(served.url + f"/symbol/BTCUSDT/chart.png?range={span}") as response:
                assert response.status == 200 and response.content_type == "image/png"
                assert (await response.read()).startswith(b"\x89PNG\r\n\x1a\n")
        async with session.get(served.url + "/symbol/BTCUSDT/chart.png?range=2d") as response:
            assert response.status == 400
        async with session.get(served.url + "/symbol/ETHUSDT/chart.png") as response:
            assert response.status == 404
        async with session.get(served.url + "/symbol/ETHUSDT") as response:
            assert response.status == 200 and "No stored windows" in await response.text()
        async with session.get(served.url + "/symbol/%3Cscript%3E") as response:
            assert response.status == 404


def deliver(data_dir: Path, signal_id: str) -> None:
    """Two destinations received the signal, a third has it queued (the bots' outbox tables)."""
    db = open_database(data_dir / "flowbot.db")
    try:
        destinations = ((1, "telegram", "sent"), (2, "discord", "sent"), (3, "telegram", "pending"))
        outbox = [{"id": n, "platform": platform, "chat_id": str(n), "thread_id": 0, "key": f"alert:{n}",
                   "kind": "alert", "state": state} for n, platform, state in destinations]
        db["outbox"].insert_all(outbox)
        db["outbox_signals"].insert_all([{"outbox_id": row["id"], "signal_id": signal_id, "platform": row["platform"],
                                          "chat_id": row["chat_id"], "thread_id": 0} for row in outbox])
    finally:
        db.close()


async def test_alerts_feed_filters_and_shows_provider_and_deliveries(served: Served, data_dir: Path) -> None:
    store = SignalStore(data_dir / "flowbot.db")
    try:
        everything = store.recent(limit=100)
        kinds = {s.kind for s in everything}
        whale = store.recent("BTCUSDT", "whale", limit=1)[0]
        store.set_explanation(whale.id, "A cluster of large market buys.", "dashscope")
        expected = {(kind, severity): [s.id for s in store.recent("BTCUSDT", kind, severity, limit=100)]
                    for kind in kinds for severity in (1, 2, 3)}
    finally:
        store.close()
    deliver(data_dir, whale.id)

    status, html = await get(served.url + "/alerts", BEARER)
    assert status == 200
    assert alert_ids(html) == [s.id for s in everything]  # newest first, as the store orders them
    for (kind, severity), ids in expected.items():
        status, html = await get(served.url + f"/alerts?symbol=btcusdt&kind={kind}&severity={severity}", BEARER)
        assert status == 200
        assert alert_ids(html) == ids, (kind, severity)
    status, html = await get(served.url + f"/alerts?symbol=BTCUSDT&kind=whale&severity={whale.severity}", BEARER)
    item = html[html.index(f'data-id="{whale.id}"'):]
    item = item[:item.index("</li>")]
    assert "A cluster of large market buys." in item
    assert "explained by dashscope · delivered to 2 destinations" in item
    assert "delivered to 0 destinations" in html.replace(item, "") or len(alert_ids(html)) == 1
    status, html = await get(served.url + "/alerts?symbol=ETHUSDT", BEARER)
    assert alert_ids(html) == [] and "No alerts yet." in html
    status, _ = await get(served.url + "/alerts?symbol=BTC-USDT", BEARER)
    assert status == 400


async def test_stats_page_shows_the_track_records_flowbot_stats_prints(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two days of real XRPETH trades (the BTCUSDT dump ends before any signal is 15 minutes old)."""
    settings = Settings(_env_file=None, DATA_DIR=str(tmp_path), ALERT_BUDGET_PER_DAY="0")
    await replay([shared_data / "XRPETH-rest-aggTrades.json"], settings, symbol="XRPETH", out=io.StringIO(),
                 err=Console(file=io.StringIO()))
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert cli_main(["stats"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) >= 2 and all(line.startswith("XRPETH ") for line in printed)  # its kinds, measured
    async with serving_dashboard(dashboard_settings(tmp_path), InMemoryBus()) as served:
        status, html = await get(served.url + "/stats", BEARER)
        assert status == 200 and 'href="/stats"' in html
        assert [unescape(item) for item in re.findall(r'<li class="record">(.*?)</li>', html)] == printed
        status, html = await get(served.url + "/stats?symbol=ETHUSDT", BEARER)
        assert status == 200 and "No track record yet." in html
        status, _ = await get(served.url + "/stats?symbol=BTC-USDT", BEARER)
        assert status == 400


async def test_pages_answer_401_without_the_token(served: Served) -> None:
    for path in ("/", "/alerts", "/stats", "/symbol/BTCUSDT", "/symbol/BTCUSDT/chart.png", "/events"):
        status, body = await get(served.url + path)
        assert status == 401, path
        assert TOKEN not in body
        status, _ = await get(served.url + path, {"Authorization": "Bearer wrong-token"})
        assert status == 401, path
        status, _ = await get(served.url + path, {"Cookie": "flowbot_dashboard=forged"})
        assert status == 401, path
    status, body = await get(served.url + "/")
    assert 'name="token"' in body  # the page offers the sign-in form
    status, _ = await get(served.url + "/healthz")
    assert status == 200  # probes stay open


async def test_login_sets_an_http_only_cookie_that_opens_the_pages(served: Served) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.post(served.url + "/login?next=/alerts", data={"token": "wrong"}) as response:
            assert response.status == 401
        async with session.post(served.url + "/login?next=//evil.example/", data={"token": TOKEN},
                                allow_redirects=False) as response:
            assert response.status == 303 and response.headers["Location"] == "/"
        async with session.post(served.url + "/login?next=/alerts", data={"token": TOKEN},
                                allow_redirects=False) as response:
            assert response.status == 303 and response.headers["Location"] == "/alerts"
            cookie = response.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
        for path in ("/", "/alerts", "/symbol/BTCUSDT"):
            async with session.get(served.url + path) as response:
                assert response.status == 200, path


async def test_without_a_token_the_pages_are_open(data_dir: Path) -> None:
    async with serving_dashboard(dashboard_settings(data_dir, token=None), InMemoryBus()) as served:
        status, html = await get(served.url + "/")
    assert status == 200 and 'id="card-BTCUSDT"' in html


async def next_event(lines: aiohttp.StreamReader) -> tuple[str, dict]:
    """The next named SSE event (comments skipped)."""
    name, data = "", b""
    while True:
        line = (await lines.readline()).rstrip(b"\n")
        if line.startswith(b"event: "):
            name = line[7:].decode()
        elif line.startswith(b"data: "):
            data = line[6:]
        elif not line and name:
            return name, orjson.loads(data)


async def test_event_stream_sends_cards_and_alerts_as_the_bus_publishes(served: Served) -> None:
    latest = served.dashboard.state.contexts["BTCUSDT"].latest
    assert latest is not None
    newer = dataclasses.replace(latest, window_start=latest.window_end, window_end=latest.window_end + WINDOW_MS,
                                close=latest.close + 1_000 * PRICE_SCALE, trade_count=1)
    signal = Signal(id="BTCUSDT:whale:test", symbol="BTCUSDT", kind="whale", direction="buy", severity=3,
                    window_start=newer.window_start, window_end=newer.window_end, evidence={"whales": 4})
    async with aiohttp.ClientSession(headers=BEARER) as session, session.get(served.url + "/events") as response:
        assert response.status == 200 and response.content_type == "text/event-stream"
        name, first = await asyncio.wait_for(next_event(response.content), STREAM_TIMEOUT_S)
        assert name == "card" and first["symbol"] == "BTCUSDT"
        served.bus.publish(WindowClosed(newer))
        served.bus.publish(signal)
        seen: dict[str, dict] = {}
        while {"card", "alert"} - seen.keys():
            name, data = await asyncio.wait_for(next_event(response.content), STREAM_TIMEOUT_S)
            if name == "alert" or data["fields"]["price"] != first["fields"]["price"]:
                seen[name] = data
    expected_price = f"{(Decimal(newer.close) / PRICE_SCALE).normalize():,f}"
    assert seen["card"]["fields"]["price"] == expected_price
    assert seen["card"]["fields"]["trades"] == f"{int(first['fields']['trades'].replace(',', '')) + 1:,}"
    assert seen["alert"]["id"] == signal.id and seen["alert"]["severity"] == 3
    assert seen["alert"]["byline"] == "delivered to 0 destinations"


@pytest.fixture
def dashboard_bus_url(own_redis_url: str) -> str:
    return own_redis_url


async def test_standalone_dashboard_follows_the_redis_bus(data_dir: Path, dashboard_bus_url: str) -> None:
    settings = Settings(_env_file=None, SYMBOLS="BTCUSDT", DATA_DIR=str(data_dir), HEALTH_PORT="0",
                        BUS_URL=dashboard_bus_url, DASHBOARD_TOKEN=TOKEN)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        running = asyncio.create_task(run_dashboard(settings))
        engine_bus = make_bus(dashboard_bus_url, 100)
        try:
            while "dashboard on http://" not in out.getvalue():
                assert not running.done(), running
                await asyncio.sleep(0.05)
            url = re.search(r"http://\S+/", out.getvalue()).group(0)
            status, html = await get(url, BEARER)
            assert status == 200 and field(html, "trades") == "5,000"  # from the store, before any event
            stored_price = field(html, "price")
            latest = stored_windows(FeatureStore(data_dir), "BTCUSDT")[-1]
            for n in range(1, 200):  # an engine publishing windows; the dashboard's group sees those after it exists
                newer = dataclasses.replace(latest, window_start=latest.window_end + (n - 1) * WINDOW_MS,
                                            window_end=latest.window_end + n * WINDOW_MS, close=n * PRICE_SCALE)
                engine_bus.publish(WindowClosed(newer))
                await asyncio.sleep(0.1)
                status, html = await get(url, BEARER)
                if field(html, "price") != stored_price:
                    break
            assert int(field(html, "price")) in range(1, n + 1)  # a price only the published windows had
            status, _ = await get(url + "readyz")
            assert status == 200
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await engine_bus.close()


async def test_usdm_cards_show_the_hours_liquidations_and_spot_cards_leave_them_out(served: Served,
                                                                                    shared_data: Path) -> None:
    """The real !forceOrder@arr recording's windows on the bus: the busiest symbol's card sums each side's last
    hour exactly as an independent Decimal reading of the raw orders does."""
    from engine.analysis.pipeline import FlowPipeline
    from engine.venues.binance.messages import liquidation_from_force_order
    from flowbot.analysis_config import pipeline_config

    lines = [line for line in (shared_data / "binance-usdm-forceorder-2025-12-27.jsonl").read_bytes().splitlines()
             if line.strip()]
    orders = [orjson.loads(line)["data"]["o"] for line in lines]
    symbol = max({o["s"] for o in orders}, key=lambda s: sum(o["s"] == s for o in orders))
    windows_bus = InMemoryBus()
    closed = windows_bus.subscribe(WindowClosed, maxsize=1_000_000)
    pipeline = FlowPipeline(pipeline_config(Settings(_env_file=None, MARKET="usdm")), windows_bus)
    for order in orders:
        if order["s"] == symbol:
            liquidation = liquidation_from_force_order({"e": "forceOrder", "E": order["T"], "o": order})
            pipeline.on_liquidations(symbol, [liquidation])
    pipeline.finish()
    events = [closed.get_nowait() for _ in range(closed.depth)]
    last_end = events[-1].features.window_end
    mine = [o for o in orders if o["s"] == symbol and o["T"] // 5000 * 5000 + 5000 > last_end - 3_600_000]
    longs, shorts = (sum((Decimal(o["ap"]) * Decimal(o["z"]) for o in mine if o["S"] == side), Decimal(0))
                     for side in ("SELL", "BUY"))
    for event in events:
        served.bus.publish(event)
    await wait_for_card(served, symbol)
    status, html = await get(served.url + "/", BEARER)
    assert status == 200
    card = html[html.index(f'id="card-{symbol}"'):]
    card = card[:card.index("</article>")]
    assert "Liquidated 1h" in card
    assert field(card, "liquidations") == f"longs {longs:,.2f} / shorts {shorts:,.2f} ({len(mine)} orders, at least)"
    spot = html[html.index('id="card-BTCUSDT"'):]
    assert "Liquidated 1h" not in spot[:spot.index("</article>")]


async def wait_for_card(served: Served, symbol: str) -> None:
    for _ in range(200):
        if symbol in served.dashboard.state.futures:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no card for {symbol}")

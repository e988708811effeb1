"""The dashboard in headless Chromium (Debian's package), driven over the DevTools protocol: signed in, `/` follows a
replay of the real BTCUSDT dump live; a screenshot of each page is kept under test-artifacts/dashboard/."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from expected_flow import columns, load_csv
from test_dashboard import TOKEN, serving_dashboard

from core.settings import Settings
from engine.analysis.pipeline import FlowPipeline
from engine.bus import InMemoryBus
from flowbot.analysis_config import pipeline_config
from storage.feature_store import FeatureStore
from storage.signal_store import SignalStore

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "dashboard"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--remote-debugging-port=0", "--window-size=1280,900", "--no-first-run")
WAIT_S = 30  # a guard against a hang, not a timing assertion
CHUNK_ROWS = 250


def chromium_path() -> str:
    """Debian's chromium; the test skips without it, except on CI (CI set), where it fails."""
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        reason = "chromium is not installed (apt-get install chromium); .ci/run installs it"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}")
        pytest.skip(reason)
    return path


class DevTools:
    """A page target over the Chrome DevTools protocol: commands by id, events ignored."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.last_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.last_id += 1
        await self.socket.send_json({"id": self.last_id, "method": method, "params": params})
        async for message in self.socket:
            data = json.loads(message.data)
            if data.get("id") == self.last_id:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                return data["result"]
        raise RuntimeError("the DevTools connection closed")

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str) -> Any:
        """The expression's value once truthy; fails naming `what` if it never is."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):  # a navigation may replace the context mid-call
                if value := await self.evaluate(expression):
                    return value
            await asyncio.sleep(0.1)
        pytest.fail(f"the page never showed {what}")

    async def open(self, url: str, ready: str = "true") -> None:
        await self.call("Page.navigate", url=url)
        await self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete' && ({ready})",
                            f"{url} loaded")

    async def screenshot(self, name: str) -> Path:
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        print(f"screenshot: {path}")
        return path


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[DevTools]:
    """Headless Chromium with a fresh profile, and its first page over DevTools; stopped on the way out."""
    process = subprocess.Popen(
        [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + WAIT_S
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not start (exit code {process.poll()})")
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split("\n")[0])
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            page = next(t for t in targets if t["type"] == "page")
            async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as socket:
                yield DevTools(socket)
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


CARD = "document.getElementById('card-BTCUSDT')"


def card_field(name: str) -> str:
    return f"{CARD}.querySelector('[data-field=\"{name}\"]').textContent"


ALERT_IDS = "Array.from(document.querySelectorAll('#alerts > li')).map(li => li.dataset.id)"


async def test_dashboard_follows_a_replay_live_in_chromium(shared_data: Path, tmp_path: Path) -> None:
    chromium_path()
    data_dir = tmp_path / "data"
    settings = Settings(_env_file=None, SYMBOLS="BTCUSDT", DATA_DIR=str(data_dir), HEALTH_PORT="0",
                        WHALE_MIN_NOTIONAL="20000", WHALE_PERCENTILE="0", ALERT_BUDGET_PER_DAY="0",
                        DASHBOARD_TOKEN=TOKEN)
    trades = columns(load_csv(shared_data / "BTCUSDT-aggTrades-2026-01-01.csv"))
    half = len(trades) // 2
    bus = InMemoryBus()
    store = FeatureStore(data_dir)
    signal_store = SignalStore(data_dir / "flowbot.db")
    try:
        async with serving_dashboard(settings, bus) as served, chromium(tmp_path / "profile") as page:
            pipeline = FlowPipeline(pipeline_config(settings), bus, store=store, signal_store=signal_store)
            pipeline.on_columns(trades.take(0, half))  # the first half of the replay, before the page opens
            store.flush()

            await page.open(served.url + "/", "!!document.querySelector('input[name=token]')")
            assert (await page.evaluate("document.title")).startswith("Sign in")
            await page.evaluate(f"document.querySelector('input[name=token]').value = {json.dumps(TOKEN)};"
                                "document.querySelector('form.login').submit()")
            await page.wait_for(f"location.pathname === '/' && !!{CARD}", "the card after signing in")
            await page.wait_for("document.getElementById('live').textContent === 'live'", "the event stream open")
            trades_before = await page.wait_for(f"{card_field('trades')} !== '\\u2013' && {card_field('trades')}",
                                                "the card's numbers")
            cvd_before = await page.evaluate(card_field("cvd"))
            alerts_before = await page.evaluate(ALERT_IDS)
            await page.screenshot("index-before")

            for start in range(half, len(trades), CHUNK_ROWS):  # the second half, replayed while the page is open
                pipeline.on_columns(trades.take(start, start + CHUNK_ROWS))
                await asyncio.sleep(0.02)
            pipeline.finish()

            await page.wait_for(f"{card_field('trades')} === {json.dumps(f'{len(trades):,}')}",
                                "the card's trade count of the whole replay")
            new_alert = await page.wait_for(
                f"{ALERT_IDS}.find(id => !{json.dumps(alerts_before)}.includes(id))", "a new alert")
            assert int(trades_before.replace(",", "")) < len(trades)
            assert await page.evaluate(card_field("cvd")) != cvd_before
            assert new_alert in [s.id for s in signal_store.recent(limit=100)]
            assert await page.evaluate("location.pathname") == "/"  # live, without reloading
            await page.screenshot("index")
            await page.call("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2,
                            mobile=True)
            await page.screenshot("index-phone")
            await page.call("Emulation.clearDeviceMetricsOverride")

            await page.open(served.url + "/symbol/BTCUSDT?range=15m",
                            "document.querySelector('img.chart').complete")
            assert await page.evaluate("document.querySelector('img.chart').naturalWidth") == 1000
            assert await page.evaluate("document.querySelectorAll('#alerts > li').length") > 0
            await page.screenshot("symbol-BTCUSDT")

            await page.open(served.url + "/alerts")
            shown = await page.evaluate(ALERT_IDS)
            assert shown == [s.id for s in signal_store.recent(limit=100)]
            await page.screenshot("alerts")
    finally:
        store.close()
        signal_store.close()

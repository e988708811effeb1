"""Issue 14, point 9: the dashboard's sign-in over real HTTP: no open redirect, a slowdown for guessed tokens, a
session cookie that expires, is Secure over TLS and can be ended, and Host names checked against DNS rebinding."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr
from yarl import URL

from core.health_server import HealthServer
from core.metrics import Metrics
from core.settings import Settings
from dashboard.app import Dashboard
from dashboard.auth import SESSION_TTL_S, Auth
from dashboard.login_throttle import FREE_FAILURES, LoginThrottle
from engine.bus import InMemoryBus
from flowbot.dashboard_config import dashboard_config
from storage.feature_store import FeatureStore

TOKEN = "dashboard-faults-token-91c2"
EVIL_NEXTS = ["/%09/evil.example", "/%0A/evil.example", "/%0D/evil.example", "/%0d%0a/evil.example",
              "/%5C/evil.example", "//evil.example", "https://evil.example/", "/%20/evil.example", "%2F%2Fevil.example"]


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, token: str | None = TOKEN, **env: str) -> AsyncIterator[str]:
    settings = Settings(_env_file=None, SYMBOLS="BTCUSDT", DATA_DIR=str(tmp_path), HEALTH_HOST="127.0.0.1",
                        HEALTH_PORT="0", DASHBOARD_TOKEN=token or "", **env)
    dashboard = Dashboard(dashboard_config(settings), InMemoryBus(), store=FeatureStore(tmp_path),
                          name="dashboard-faults", signal_db_path=tmp_path / "flowbot.db")
    server = HealthServer(settings, Metrics(), lambda: (True, {}))
    server.add_routes(dashboard.routes())
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()
        dashboard.close()


def raw(url: str) -> URL:
    """The URL exactly as written: %09 stays %09 on the wire."""
    return URL(url, encoded=True)


@pytest.mark.parametrize("evil", EVIL_NEXTS)
async def test_sign_in_only_ever_redirects_to_a_path_of_this_site(tmp_path: Path, evil: str) -> None:
    async with serving(tmp_path, token=None) as url, aiohttp.ClientSession() as session, \
            session.get(raw(f"{url}/login?next={evil}"), allow_redirects=False) as response:
        assert response.status == 303 and response.headers["Location"] == "/"
    async with serving(tmp_path) as url, aiohttp.ClientSession() as session:
        async with session.post(raw(f"{url}/login?next={evil}"), data={"token": TOKEN},
                                allow_redirects=False) as response:
            assert response.status == 303 and response.headers["Location"] == "/"
        async with session.get(raw(f"{url}/login?next={evil}")) as response:
            assert 'action="/login?next=%2F"' in await response.text()


async def test_a_same_site_path_is_kept(tmp_path: Path) -> None:
    async with serving(tmp_path) as url, aiohttp.ClientSession() as session, \
            session.post(raw(f"{url}/login?next=/alerts%3Fsymbol%3DBTCUSDT"), data={"token": TOKEN},
                         allow_redirects=False) as response:
        assert response.headers["Location"] == "/alerts?symbol=BTCUSDT"


async def test_guessing_the_token_is_slowed_down_whatever_is_guessed(tmp_path: Path) -> None:
    async with serving(tmp_path) as url, aiohttp.ClientSession() as session:
        for _ in range(FREE_FAILURES):
            async with session.post(f"{url}/login", data={"token": "guess"}) as response:
                assert response.status == 401
        for guess in ("guess", TOKEN):  # once slowed down, even the right token waits: guesses learn nothing
            async with session.post(f"{url}/login", data={"token": guess}, allow_redirects=False) as response:
                assert response.status == 429
                assert int(response.headers["Retry-After"]) >= 1
                assert "Too many wrong tokens" in await response.text()
                assert "Set-Cookie" not in response.headers


def test_the_wait_doubles_with_each_wrong_token_and_ends() -> None:
    now = [1000.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    waits = []
    for _ in range(FREE_FAILURES + 3):
        throttle.failed("10.0.0.9")
        waits.append(throttle.wait_s("10.0.0.9"))
    assert waits == [0.0] * (FREE_FAILURES - 1) + [1.0, 2.0, 4.0, 8.0]
    assert throttle.wait_s("10.0.0.10") == 0.0  # another address is not slowed
    now[0] += 8.0
    assert throttle.wait_s("10.0.0.9") == 0.0
    throttle.succeeded("10.0.0.9")
    throttle.failed("10.0.0.9")
    assert throttle.wait_s("10.0.0.9") == 0.0


async def test_the_session_cookie_expires_is_secure_over_tls_and_logout_ends_it(tmp_path: Path) -> None:
    async with serving(tmp_path) as url, aiohttp.ClientSession() as session:
        cookies = []
        for headers in ({}, {"X-Forwarded-Proto": "https"}):
            async with session.post(f"{url}/login", data={"token": TOKEN}, headers=headers,
                                    allow_redirects=False) as response:
                cookie = response.headers["Set-Cookie"]
                assert f"Max-Age={SESSION_TTL_S}" in cookie and "HttpOnly" in cookie and TOKEN not in cookie
                assert ("Secure" in cookie) == bool(headers)
                cookies.append(response.cookies["flowbot_dashboard"].value)
        assert cookies[0] != cookies[1]  # a new session per sign-in, not a fixed digest of the token
        opened = {"Cookie": f"flowbot_dashboard={cookies[0]}"}
        async with session.get(f"{url}/alerts", headers=opened) as response:
            assert response.status == 200
        async with session.post(f"{url}/logout", headers=opened, allow_redirects=False) as response:
            assert response.status == 303 and response.headers["Location"] == "/login"
            assert 'flowbot_dashboard=""' in response.headers["Set-Cookie"]
        async with session.get(f"{url}/alerts", headers=opened) as response:
            assert response.status == 401  # a copy of the ended session no longer opens the pages
        async with session.get(f"{url}/alerts", headers={"Cookie": f"flowbot_dashboard={cookies[1]}"}) as response:
            assert response.status == 200


def test_a_session_stops_opening_the_pages_when_it_expires() -> None:
    now = [1_700_000_000.0]
    auth = Auth(SecretStr(TOKEN), clock=lambda: now[0])
    session = auth.new_session()
    assert auth.session_valid(session)
    expiry, nonce, signature = session.split(".")
    assert not auth.session_valid(f"{int(expiry) + 10**6}.{nonce}.{signature}")  # a longer life is not signed
    now[0] += SESSION_TTL_S
    assert not auth.session_valid(session)


@pytest.mark.parametrize("token", [TOKEN, None])
async def test_a_host_name_not_configured_is_refused(tmp_path: Path, token: str | None) -> None:
    async with serving(tmp_path, token=token) as url, aiohttp.ClientSession() as session:
        port = URL(url).port
        for host, status in ((f"evil.example:{port}", 421), ("evil.example", 421), (f"localhost:{port}", 200),
                             (f"127.0.0.1:{port}", 200), (f"[::1]:{port}", 200)):
            async with session.get(f"{url}/login", headers={"Host": host}, allow_redirects=False) as response:
                assert response.status == (status if token else {200: 303}.get(status, status)), host
        for path in ("/", "/alerts", "/events", "/symbol/BTCUSDT"):
            async with session.get(f"{url}{path}", headers={"Host": "evil.example"}) as response:
                assert response.status == 421, path
                assert "DASHBOARD_ALLOWED_HOSTS" in await response.text()
        async with session.get(f"{url}/healthz", headers={"Host": "evil.example"}) as response:
            assert response.status == 200  # probes reach a pod by any name


async def test_configured_host_names_replace_the_loopback_ones(tmp_path: Path) -> None:
    async with serving(tmp_path, DASHBOARD_ALLOWED_HOSTS="Flowbot.Example.com, 10.0.0.5") as url, \
            aiohttp.ClientSession() as session:
        for host, status in (("flowbot.example.com", 200), ("FLOWBOT.example.com.:443", 200), ("10.0.0.5:80", 200),
                             ("localhost", 421)):
            async with session.get(f"{url}/login", headers={"Host": host}) as response:
                assert response.status == status, host

"""Shared test fixtures."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Iterator
from pathlib import Path

import hypothesis  # noqa: F401  (imported first: avoids pytest+hypothesis AST recursion crash on 3.11.7)
import pytest
from expected_flow import columns, load_csv
from rich.console import Console

from core.events import Signal
from core.settings import Settings
from engine.analysis.pipeline import FlowPipeline
from engine.bus import InMemoryBus
from fakes.chat_completions import FakeChatServer
from fakes.recordings import shared_data_dir
from flowbot.analysis_config import pipeline_config
from flowbot.replay import replay
from storage.signal_store import SignalStore


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real Binance recordings; tests that need it skip where it is absent, and fail on CI (CI set)."""
    folder = shared_data_dir()
    if folder is None:
        message = "real Binance recordings not found: ../shared/data (or $FLOWBOT_SHARED_DATA) is absent"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {message}")
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def replayed(shared_data: Path) -> FlowPipeline:
    """The real BTCUSDT dump through the pipeline, with a whale floor low enough to give whale signals."""
    settings = Settings(_env_file=None, WHALE_MIN_NOTIONAL="20000", WHALE_PERCENTILE="0", ALERT_BUDGET_PER_DAY="0")
    found: list[Signal] = []
    pipeline = FlowPipeline(pipeline_config(settings), InMemoryBus(), on_signal=found.append)
    pipeline.on_columns(columns(load_csv(shared_data / "BTCUSDT-aggTrades-2026-01-01.csv")))
    pipeline.finish()
    pipeline.found = found  # type: ignore[attr-defined]
    return pipeline


@pytest.fixture
def whale(replayed: FlowPipeline) -> Signal:
    return next(s for s in replayed.found if s.kind == "whale")  # type: ignore[attr-defined]


@pytest.fixture
async def chat():
    """A fake chat-completions server (Groq, DashScope and OpenAI paths) for the real SDK clients."""
    server = FakeChatServer()
    await server.start()
    yield server
    await server.close()


@pytest.fixture(scope="session")
def btc_data_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DATA_DIR holding the feature store and signals of the real BTCUSDT dump (flowbot replay, in process)."""
    data_dir = tmp_path_factory.mktemp("btc-store")
    settings = Settings(_env_file=None, DATA_DIR=str(data_dir), WHALE_MIN_NOTIONAL="20000", WHALE_PERCENTILE="0",
                        ALERT_BUDGET_PER_DAY="0")
    asyncio.run(replay([shared_data / "BTCUSDT-aggTrades-2026-01-01.csv"], settings, out=io.StringIO(),
                       err=Console(file=io.StringIO())))
    return data_dir


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis ($REDIS_URL, default redis://127.0.0.1:6379/0); skips without one, fails if REQUIRE_REDIS=1."""
    import redis

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1) as client:
            client.ping()
    except redis.RedisError as exc:
        message = f"no Redis reachable at $REDIS_URL or 127.0.0.1:6379 ({type(exc).__name__})"
        if os.environ.get("REQUIRE_REDIS") == "1":
            pytest.fail(f"REQUIRE_REDIS=1 but {message}")
        pytest.skip(message)
    return url


@pytest.fixture
def own_redis_url(redis_url: str) -> Iterator[str]:
    """A Redis database for one test, 8 above $REDIS_URL's (so runs on other dbs keep apart), emptied before and
    after."""
    import redis

    base, _, db = redis_url.rpartition("/")
    url = f"{base}/{(int(db or 0) + 8) % 16}"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    yield url
    with redis.Redis.from_url(url) as client:
        client.flushdb()


@pytest.fixture
def real_signals(btc_data_dir: Path) -> list[Signal]:
    """The signals `flowbot replay` found in the real BTCUSDT dump, oldest first."""
    store = SignalStore(btc_data_dir / "flowbot.db")
    try:
        return sorted(store.recent(limit=10_000), key=lambda s: (s.window_start, s.id))
    finally:
        store.close()

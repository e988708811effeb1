"""The alert budget: with default settings a symbol signals at most ALERT_BUDGET_PER_DAY times per day of market,
on every real recording (liquid BTCUSDT and ETHUSDT, mid-caps, the thin XRPETH)."""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from core.settings import Settings
from flowbot.replay import replay
from storage.signal_store import SignalStore

DAY_MS = 86_400_000
FILES = {
    "BTCUSDT-aggTrades-2026-01-01.csv": None, "XRPETH-rest-aggTrades.json": "XRPETH",
    "BTCUSDT-rest-aggTrades.json": "BTCUSDT", "binance-spot-aggtrade-ws.jsonl": None,
    "binance-usdm-aggtrade-ws.jsonl": None, "binance-spot-ethusdt-trade-ws.jsonl": None,
    "binance-usdm-btcusdt-trade-ws-2024-08-08.jsonl": None,
}


def signals_per_day(path: Path, symbol: str | None, data_dir: Path, **env: str) -> Counter[tuple[str, int]]:
    """(symbol, UTC day of market) -> signals stored by a replay of `path`."""
    settings = Settings(_env_file=None, DATA_DIR=str(data_dir), **env)
    asyncio.run(replay([path], settings, symbol=symbol, out=io.StringIO(), err=Console(file=io.StringIO())))
    store = SignalStore(data_dir / "flowbot.db")
    try:
        return Counter((s.symbol, s.window_end // DAY_MS) for s in store.recent(limit=1_000_000))
    finally:
        store.close()


@pytest.mark.parametrize("name", list(FILES))
def test_no_symbol_signals_more_than_the_budget_per_day(name: str, shared_data: Path, tmp_path: Path) -> None:
    per_day = signals_per_day(shared_data / name, FILES[name], tmp_path)
    assert per_day, "every recording still gives signals"
    assert max(per_day.values()) <= 24, per_day.most_common(3)


def test_the_thin_market_needed_the_budget_and_a_smaller_budget_gives_fewer(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "XRPETH-rest-aggTrades.json"
    unbounded = signals_per_day(path, "XRPETH", tmp_path / "unbounded", ALERT_BUDGET_PER_DAY="0")
    assert max(unbounded.values()) > 100  # hundreds a day without a budget
    six = signals_per_day(path, "XRPETH", tmp_path / "six", ALERT_BUDGET_PER_DAY="6")
    assert 0 < max(six.values()) <= 6

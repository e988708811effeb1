"""Track records where users see them: the line every alert carries, /stats on Telegram and on Discord, with the
numbers `flowbot evaluate` measures independently on a real replay."""

from __future__ import annotations

import asyncio
import io
import shutil
from dataclasses import replace
from pathlib import Path

import discord
import pandas as pd
import pytest
from discord.gateway import DiscordWebSocket
from rich.console import Console

import bot.discord.adapter as discord_adapter
from ai.ask import Asker
from ai.providers import ProviderChain
from bot.service import BotService
from core.settings import Settings
from engine.signals import registry
from fakes.discord_api import ALERTS_CHANNEL_ID, FakeDiscord
from fakes.telegram_api import FakeTelegram
from flowbot.bot_config import bot_config
from flowbot.evaluate import evaluate
from flowbot.horizons import parse_horizons
from storage.feature_store import FeatureStore
from storage.signal_store import SignalStore

CHAT = 4242
SYMBOL = "XRPETH"


@pytest.fixture(scope="module")
def replayed(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A DATA_DIR holding the replay of the real XRPETH trades, and evaluate's outcomes of its signals."""
    data_dir = tmp_path_factory.mktemp("xrpeth")
    settings = Settings(_env_file=None, DATA_DIR=str(data_dir), ALERT_BUDGET_PER_DAY="0")
    outcomes, _ = asyncio.run(evaluate([shared_data / "XRPETH-rest-aggTrades.json"], settings, parse_horizons("15m"),
                                       symbol=SYMBOL, console=Console(file=io.StringIO())))
    return data_dir, outcomes


@pytest.fixture
def copied(replayed: tuple[Path, pd.DataFrame], tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """The replay's DATA_DIR copied: each test's chats and settings are its own."""
    copy = tmp_path / "data"
    shutil.copytree(replayed[0], copy)
    return copy, replayed[1]


def expected_lines(outcomes: pd.DataFrame, before_ms: int | None = None) -> dict[tuple[str, str], str]:
    """Each (kind, direction)'s line, from evaluate's signed returns (trade prices, not the store's windows)."""
    ends = _ms(outcomes["window_end"])
    rows = outcomes if before_ms is None else outcomes[ends < before_ms]
    lines = {}
    for (kind, direction), group in rows.groupby(["kind", "direction"]):
        signed = group["signed_ret_15m"].dropna()
        if signed.empty:
            continue
        moved = "down" if direction == "sell" else "up"
        lines[(kind, direction)] = (
            f"{SYMBOL} {kind}, {direction}, last 30 days: {len(group)} alerts, "
            f"{(signed > 0).mean():.0%} {moved} after 15 min, median {signed.median() * 100:+.2f}%")
    return lines


def _ms(column: pd.Series) -> pd.Series:
    """window_end as integer ms, whether evaluate wrote integers or ISO 8601."""
    if pd.api.types.is_integer_dtype(column):
        return column
    return pd.to_datetime(column, utc=True).astype("int64") // 1_000_000


def service(data_dir: Path, **overrides: str) -> BotService:
    settings = Settings(**{"_env_file": None, "DATA_DIR": str(data_dir), "SYMBOLS": f"{SYMBOL},BTCUSDT",  # type: ignore[arg-type]
                           "TELEGRAM_CHAT_INTERVAL": "0", **overrides})
    store = FeatureStore(data_dir)
    return BotService(bot_config(settings), store=store, signal_store=None,
                      asker=Asker(ProviderChain([], timeout=1).answer, store, symbols=settings.symbols),
                      retry_base_s=0.05)


async def reply_to(fake: FakeTelegram, text: str) -> str:
    before = len(fake.sent)
    fake.push_message(CHAT, text)
    await fake.wait_until(lambda: len(fake.sent) > before, timeout=20)
    return fake.sent[before].text or ""


async def test_an_alert_carries_its_track_record_and_stats_answers_on_telegram(copied) -> None:
    data_dir, outcomes = copied
    lines = expected_lines(outcomes)
    assert lines, "the replay has measured signals"
    (kind, direction), line = next(iter(lines.items()))
    last_end = int(_ms(outcomes["window_end"]).max())
    store = SignalStore(data_dir / "flowbot.db")
    try:
        like = next(s for s in store.recent(limit=10_000) if (s.kind, s.direction) == (kind, direction))
    finally:
        store.close()
    fresh = replace(like, id=f"{SYMBOL}:{kind}:fresh", window_start=last_end, window_end=last_end + 5_000)
    async with FakeTelegram() as fake:
        bots = service(data_dir, TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_BASE_URL=fake.url)
        await bots.start()
        try:
            assert "Subscribed" in await reply_to(fake, f"/subscribe {SYMBOL}")
            await bots.on_signal(fresh)
            assert await bots.dispatchers["telegram"].drain(10)
            alert = fake.sent[-1].text or ""
            assert alert.startswith(f"<b>{SYMBOL}") and line in alert

            stats = await reply_to(fake, f"/stats {SYMBOL}")
            assert stats.startswith("<b>Track records, last 30 days</b>")
            assert [text for text in stats.splitlines()[1:] if text.startswith(SYMBOL)] == list(lines.values())
            only = await reply_to(fake, f"/stats {kind} {SYMBOL}")
            assert [text for text in only.splitlines() if text.startswith(SYMBOL)] == [
                text for (k, _), text in lines.items() if k == kind]
            assert "no track record yet" in (await reply_to(fake, "/stats BTCUSDT")).lower()
            unknown = await reply_to(fake, "/stats NOTACOIN")
            assert "'NOTACOIN' is neither a symbol I follow nor a signal kind" in unknown
            assert (await reply_to(fake, "/settings language pt")).startswith("<b>")
            pt = await reply_to(fake, f"/stats {SYMBOL}")
            assert pt.startswith("<b>Históricos, últimos 30 dias</b>") and "últimos 30 dias:" in pt
        finally:
            await bots.stop()


async def test_stats_answers_on_discord(copied, monkeypatch) -> None:
    monkeypatch.setattr(discord_adapter, "GUILD_READY_TIMEOUT_S", 0.05)
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", DiscordWebSocket.DEFAULT_GATEWAY)
    data_dir, outcomes = copied
    lines = expected_lines(outcomes)
    async with FakeDiscord() as fake:
        bots = service(data_dir, DISCORD_BOT_TOKEN=fake.token, DISCORD_API_BASE_URL=fake.api_base,
                       DISCORD_GATEWAY_URL=fake.gateway_url)
        await bots.start()
        try:
            interaction = await fake.dispatch_interaction("stats", {"symbol": SYMBOL}, channel_id=ALERTS_CHANNEL_ID)
            answered = await fake.wait_for_response(interaction)
            await fake.wait_until(lambda: answered.type != 5 or bool(answered.original and answered.original.edits),
                                  timeout=20)
            assert answered.original is not None
            embed = answered.original.embeds[0]
            assert embed["title"] == "Track records, last 30 days"
            assert [text for text in embed["description"].splitlines() if text.startswith(SYMBOL)] == list(
                lines.values())
        finally:
            await bots.stop()


def positive_kinds(outcomes: pd.DataFrame) -> dict[str, bool]:
    """Each kind: at least 10 measured after 15 min and a mean signed return above zero (evaluate's figures)."""
    directed = outcomes[outcomes["direction"].isin(["buy", "sell"])]
    return {kind: bool(group["signed_ret_15m"].count() >= 10 and group["signed_ret_15m"].mean() > 0)
            for kind, group in directed.groupby("kind")}


async def test_a_chat_that_wants_only_positive_records_gets_only_those_kinds(copied) -> None:
    data_dir, outcomes = copied
    worth = positive_kinds(outcomes)
    good = next(kind for kind, positive in worth.items() if positive)
    bad = next(kind for kind, positive in worth.items() if not positive)
    last_end = int(_ms(outcomes["window_end"]).max())
    store = SignalStore(data_dir / "flowbot.db")
    try:
        stored = store.recent(limit=10_000)
    finally:
        store.close()
    fresh = {kind: replace(next(s for s in stored if s.kind == kind and s.direction != "neutral"),
                           id=f"{SYMBOL}:{kind}:positive-test", window_start=last_end + n * 60_000,
                           window_end=last_end + n * 60_000 + 5_000)
             for n, kind in enumerate((good, bad))}
    async with FakeTelegram() as fake:
        bots = service(data_dir, TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_BASE_URL=fake.url,
                       ALERT_MERGE_WINDOW="0")
        await bots.start()
        try:
            assert "Subscribed" in await reply_to(fake, f"/subscribe {SYMBOL}")
            reply = await reply_to(fake, "/settings positive on")
            assert "Only kinds with a positive track record on the symbol: on" in reply
            sent = len(fake.sent)
            for signal in fresh.values():
                await bots.on_signal(signal)
            assert await bots.dispatchers["telegram"].drain(10)
            alerts = [m.text or "" for m in fake.sent[sent:]]
            title = registry.find(good).words("en").title  # type: ignore[union-attr]
            assert len(alerts) == 1 and alerts[0].startswith(f"<b>{SYMBOL} · {title} · "), (good, bad, alerts)

            await reply_to(fake, "/settings positive off")
            sent = len(fake.sent)
            await bots.on_signal(replace(fresh[bad], id=f"{SYMBOL}:{bad}:again", window_start=last_end + 600_000,
                                         window_end=last_end + 605_000))
            assert await bots.dispatchers["telegram"].drain(10)
            assert len(fake.sent) == sent + 1  # every kind again
        finally:
            await bots.stop()

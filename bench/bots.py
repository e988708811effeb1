"""Bot delivery benchmark: 10,000 Telegram subscribers to one symbol and a burst of 50 signals.

The fake Telegram Bot API runs in a process of its own, pinned to the last core (Telegram's servers are not on
the bot's machine: their work must not land on the core of Flowbot's event loop); Flowbot's bot service (the
real python-telegram-bot Application, the SQLite outbox, the routing thread, the delivery worker) runs in one
process with the feed ingesting a looped real recording from the fake Binance (in the same process). Prints
the delivery rate against the configured TELEGRAM_RATE_LIMIT (target: within 10%), lost and duplicated alerts
(target: 0 and 0), and whether ingestion keeps its rate beside the bots: a paced ingestion at --offered trades/s
with the burst arriving during it (achieved rate and worst lag, alone and beside), and the capacity (as fast
as it goes) while the delivery sends at its steady rate, median of runs beside against runs alone.

    python -m bench.bots [--subscribers 10000] [--signals 50] [--rate 30] [--offered 40000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

from ingest import build_tape

from bot.service import BotService
from core.events import Signal, TradeBatch
from core.settings import Settings
from engine.bus import InMemoryBus
from fakes.binance import FakeBinance
from fakes.telegram_api import FakeTelegram
from flowbot.bot_config import bot_config
from flowbot.feed_config import make_feed
from storage.feature_store import FeatureStore

SYMBOL = "BTCUSDT"
MERGE_S = 30
FIRST_CHAT = 10_000_001
TRADES = 300_000
RUNS_ALONE = 3  # ingestion runs before and after the delivery, each
RUNS_BESIDE = 7  # ingestion runs while the delivery sends
OFFERED = 40_000.0  # trades/s of the paced runs: a third of the feed's capacity here, far above one market's rate


def burst(count: int) -> list[Signal]:
    """`count` whale signals half a second apart in market time: each MERGE_S of them merge into one alert."""
    start = 1_767_225_600_000
    return [
        Signal(id=f"bench-{i}", symbol=SYMBOL, kind="whale", direction="buy" if i % 2 else "sell", severity=2,
               window_start=start + i * 500, window_end=start + i * 500 + 5000, created_at=time.time(),
               evidence={"whale_count": 3, "whale_buy_quote": 250_000.5, "whale_sell_quote": 120_000.25,
                         "whale_threshold_quote": 100_000.0, "close": 87_754.07, "delta": 1.5, "cvd": 17.6})
        for i in range(count)
    ]


def report(fake: FakeTelegram) -> dict[str, object]:
    """What the fake saw: messages per chat, duplicates, and the request rate."""
    ok = [c for c in fake.requests if c.status == 200 and c.method in ("sendMessage", "editMessageText")]
    times = sorted(c.at for c in ok)
    busiest, window = 0, deque[float]()
    for at in times:
        window.append(at)
        while window[0] <= at - 1.0:
            window.popleft()
        busiest = max(busiest, len(window))
    per_chat = Counter(m.chat_id for m in fake.sent)
    texts = Counter((m.chat_id, m.text) for m in fake.sent)
    return {
        "sent": len(fake.sent), "edits": len(fake.edits), "chats": len(per_chat),
        "per_chat": sorted(Counter(per_chat.values()).items()), "duplicates": sum(n - 1 for n in texts.values()),
        "seconds": times[-1] - times[0] if times else 0.0, "requests": len(ok), "busiest_second": busiest,
    }


def pin_to_last_core() -> None:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) > 1:
        os.sched_setaffinity(0, {cores[-1]})


async def serve_telegram() -> None:
    """The fake Bot API's own process: print its URL; on each stdin line print a report; stop at EOF."""
    pin_to_last_core()
    async with FakeTelegram() as fake:
        fake.max_poll_wait = 10.0  # as Telegram holds a long poll (the 0.1 s cap only speeds up test shutdowns)
        print(fake.url, flush=True)
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, sys.stdin.readline):
            print(json.dumps(report(fake)), flush=True)


def subscribe_many(service: BotService, count: int) -> None:
    """Bulk-insert `count` private chats subscribed to SYMBOL (as /subscribe would leave them)."""
    now = time.time()
    db = service.db
    with db.conn:
        db["chats"].insert_all(
            {"platform": "telegram", "chat_id": str(FIRST_CHAT + i), "thread_id": 0, "is_private": 1,
             "language": "en", "min_severity": 1, "kind_modes": "{}", "active": 1, "created_at": now}
            for i in range(count)
        )
        db["subscriptions"].insert_all(
            {"platform": "telegram", "chat_id": str(FIRST_CHAT + i), "thread_id": 0, "symbol": SYMBOL, "kinds": "",
             "created_at": now}
            for i in range(count)
        )


@dataclass(frozen=True)
class Ingestion:
    rate: float  # trades per second from the fake Binance to the bus
    worst_lag_s: float  # paced runs: the latest a trade reached the bus after its time in the offered stream


async def ingest(tape: list[dict], offered: float | None = None) -> Ingestion:
    """A fresh feed delivering the tape from a fresh fake Binance to the bus, as fast as it can or at `offered`
    trades per second."""
    async with FakeBinance(tape, batch=200, rate=offered) as binance:
        settings = Settings(
            _env_file=None, SYMBOLS=",".join(sorted({m["data"]["s"] for m in tape})), WS_STALL_TIMEOUT="60",
            BINANCE_WS_URL=binance.ws_url, BINANCE_REST_URL=binance.rest_url,
        )
        bus = InMemoryBus()
        counter = bus.subscribe(TradeBatch, name="counter", maxsize=1_000_000)
        feed_task = asyncio.create_task(make_feed(settings, bus).run())
        while binance.open_connections() < 1:
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        binance.play()
        counted, worst = 0, 0.0
        async for batch in counter:
            counted += len(batch.trades)
            if offered:
                worst = max(worst, time.perf_counter() - started - counted / offered)
            if counted >= len(tape):
                break
        rate = len(tape) / (time.perf_counter() - started)
        feed_task.cancel()
        await asyncio.gather(feed_task, return_exceptions=True)
    return Ingestion(rate, worst)


async def capacity_runs(tape: list[dict], runs: int) -> list[float]:
    return [(await ingest(tape)).rate for _ in range(runs)]


async def route_burst(service: BotService, signals: list[Signal], delay: float) -> tuple[int, float]:
    """Destinations reached and seconds taken, routing the burst as the bus would hand it over."""
    await asyncio.sleep(delay)
    started = time.perf_counter()
    routed = sum([await service.on_signal(signal) for signal in signals])
    return routed, time.perf_counter() - started


async def run(subscribers: int, signals: int, rate: float, offered: float) -> dict[str, object]:
    """Ingestion alone; then the burst arriving during a paced ingestion, and capacity runs while the delivery
    sends at its steady rate; then alone again."""
    tape = build_tape(TRADES)
    result: dict[str, object] = {"rate": rate, "alone_before": await capacity_runs(tape, RUNS_ALONE)}
    result["paced_alone"] = [await ingest(tape, offered)]
    telegram = subprocess.Popen([sys.executable, "-m", "bench.bots", "--child", "telegram"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    assert telegram.stdout is not None and telegram.stdin is not None
    data_dir = Path(tempfile.mkdtemp(prefix="flowbot-bench-bots-"))
    settings = Settings(
        _env_file=None, SYMBOLS=SYMBOL, DATA_DIR=str(data_dir), TELEGRAM_BOT_TOKEN=FakeTelegram().token,
        TELEGRAM_API_BASE_URL=telegram.stdout.readline().strip(), TELEGRAM_RATE_LIMIT=str(rate),
        ALERT_MERGE_WINDOW=str(MERGE_S),
    )
    service = BotService(bot_config(settings), store=FeatureStore(data_dir), signal_store=None, asker=None)
    subscribe_many(service, subscribers)
    await service.start()
    started = time.perf_counter()
    routing = asyncio.create_task(route_burst(service, burst(signals), delay=1.0))
    result["paced_beside"] = await ingest(tape, offered)
    result["routed"], result["routing_seconds"] = await routing
    result["beside_delivery"] = await capacity_runs(tape, RUNS_BESIDE)
    result["drained"] = await service.dispatchers["telegram"].drain(3600)
    result["delivery_seconds"] = time.perf_counter() - started
    result["outbox"] = service.outbox.counts()
    telegram.stdin.write("report\n")
    telegram.stdin.flush()
    result["telegram"] = json.loads(telegram.stdout.readline())
    await service.stop()
    telegram.communicate("")
    result["alone_after"] = await capacity_runs(tape, RUNS_ALONE)
    result["paced_alone"].append(await ingest(tape, offered))
    return result


def rates(runs: list[float]) -> str:
    return ", ".join(f"{rate:,.0f}" for rate in runs)


def paced(run: Ingestion) -> str:
    return f"{run.rate:,.0f} trades/s, worst lag {run.worst_lag_s * 1000:,.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--signals", type=int, default=50)
    parser.add_argument("--rate", type=float, default=30.0, help="TELEGRAM_RATE_LIMIT, messages per second")
    parser.add_argument("--offered", type=float, default=OFFERED, help="trades per second of the paced ingestion")
    parser.add_argument("--child", choices=["telegram"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "telegram":
        asyncio.run(serve_telegram())
        return
    result = asyncio.run(run(args.subscribers, args.signals, args.rate, args.offered))
    seen = result["telegram"]
    expected_per_chat = -(-args.signals // (MERGE_S * 2))
    lost = args.subscribers * expected_per_chat - seen["sent"] + seen["duplicates"]
    achieved = seen["requests"] / seen["seconds"]
    before, after, beside_runs = result["alone_before"], result["alone_after"], result["beside_delivery"]
    alone, beside = statistics.median(before + after), statistics.median(beside_runs)
    print(f"bots benchmark: {args.subscribers:,} Telegram subscribers of {SYMBOL}, a burst of {args.signals} signals "
          f"(merging into {expected_per_chat} alert(s) each), TELEGRAM_RATE_LIMIT={args.rate:g}/s")
    print(f"routing the burst into the outbox: {result['routing_seconds']:.2f} s; delivery finished in "
          f"{result['delivery_seconds']:.1f} s; outbox {result['outbox']}")
    print(f"sent {seen['sent']:,} messages and {seen['edits']:,} edits to {seen['chats']:,} chats "
          f"(messages per chat: {seen['per_chat']}); lost {lost}, duplicated {seen['duplicates']}")
    print(f"delivery rate {achieved:,.1f}/s = {achieved / args.rate:.1%} of the limit; busiest second "
          f"{seen['busiest_second']} requests")
    change = (beside - alone) / alone
    print(f"ingestion of {TRADES:,} trades offered at {args.offered:,.0f}/s: alone "
          f"{' and '.join(paced(r) for r in result['paced_alone'])}; with the burst routed and delivered beside it "
          f"{paced(result['paced_beside'])}")
    print(f"ingestion capacity, {TRADES:,} trades as fast as they come, median trades/s: alone {alone:,.0f} (before "
          f"{rates(before)}; after {rates(after)}); beside the delivery {beside:,.0f} ({rates(beside_runs)}): "
          f"{change:+.1%}")



if __name__ == "__main__":
    main()

"""Analyst benchmark: 1,000 explanations against a fake provider answering in 50 ms, with ingestion running.

In one process: the fake Binance streams 200,000+ real aggTrade messages (looped) into Flowbot's feed while
the AI analyst explains 1,000 signals (real signals of the BTCUSDT dump, given distinct ids) through the real
groq SDK (model calls in Flowbot's model worker process), at AI_CONCURRENCY explanations at once, against a
fake chat server that answers in 50 ms in a process of its own (a real provider is elsewhere too). A second
child process measures the same ingestion without the analyst. Prints explanations per second and both
ingestion rates (target: the analyst costs ingestion at most 10%).

    python -m bench.analyst [--signals 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import subprocess
import sys
import time

from ingest import build_tape

from ai.analyst import Analyst
from ai.worker import ModelWorker
from core.events import Signal, TradeBatch
from core.settings import Settings
from engine.analysis.pipeline import FlowPipeline
from engine.bus import InMemoryBus
from engine.replay import read_replay
from fakes.binance import FakeBinance
from fakes.chat_completions import FakeChatServer, Reply
from fakes.recordings import shared_data_dir
from flowbot.ai_config import ai_config
from flowbot.analysis_config import pipeline_config
from flowbot.feed_config import make_feed

ANSWER = Reply(text="Aggressive flow leaned to one side in this window; watch whether it persists.")


def real_signals(count: int) -> tuple[list[Signal], FlowPipeline]:
    """Real signals of the BTCUSDT dump (low whale floor), repeated under distinct ids up to `count`."""
    folder = shared_data_dir()
    assert folder is not None
    settings = Settings(_env_file=None, WHALE_MIN_NOTIONAL="5000", WHALE_PERCENTILE="0")
    found: list[Signal] = []
    pipeline = FlowPipeline(pipeline_config(settings), InMemoryBus(), on_signal=found.append)
    for batch in read_replay(folder / "BTCUSDT-aggTrades-2026-01-01.csv"):
        pipeline.on_columns(batch.columns)
    pipeline.finish()
    signals = [dataclasses.replace(found[i % len(found)], id=f"bench-{i}") for i in range(count)]
    return signals, pipeline


async def serve_chat() -> None:
    """The fake provider's own process: print its URL, serve until stdin closes."""
    chat = FakeChatServer(default=ANSWER, latency=0.05)
    await chat.start()
    print(chat.url, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await chat.close()


async def run(tape: list[dict], with_analyst: bool, signal_count: int) -> dict[str, float]:
    binance = FakeBinance(tape, batch=200)
    provider = subprocess.Popen([sys.executable, "-m", "bench.analyst", "--child", "provider"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    assert provider.stdout is not None
    chat_url = provider.stdout.readline().strip()
    await binance.start()
    settings = Settings(
        _env_file=None, SYMBOLS=",".join(sorted({m["data"]["s"] for m in tape})), BINANCE_WS_URL=binance.ws_url,
        BINANCE_REST_URL=binance.rest_url, WS_STALL_TIMEOUT="60", GROQ_API_KEY="gsk-bench",
        GROQ_BASE_URL=chat_url,
    )
    bus = InMemoryBus()
    counter = bus.subscribe(TradeBatch, name="counter", maxsize=1_000_000)
    feed = make_feed(settings, bus)
    feed_task = asyncio.create_task(feed.run())
    while binance.open_connections() < 1:
        await asyncio.sleep(0.01)
    explaining = None
    if with_analyst:
        signals, pipeline = real_signals(signal_count)
        worker = ModelWorker(ai_config(settings))
        await worker.start()
        analyst = Analyst(worker.answer, contexts=pipeline.contexts.get, concurrency=settings.ai_concurrency)
        started_explaining = time.perf_counter()
        explaining = asyncio.gather(*[analyst.explain(s) for s in signals])
    started = time.perf_counter()
    binance.play()
    counted = 0
    async for batch in counter:
        counted += len(batch.trades)  # type: ignore[attr-defined]
        if counted >= len(tape):
            break
    ingest_seconds = time.perf_counter() - started
    result = {"ingest_rate": len(tape) / ingest_seconds, "concurrency": settings.ai_concurrency}
    if explaining is not None:
        explanations = await explaining
        result["explain_rate"] = len(explanations) / (time.perf_counter() - started_explaining)
        result["by_model"] = sum(e.provider == "groq" for e in explanations) / len(explanations)
    if with_analyst:
        await worker.close()
    feed_task.cancel()
    await asyncio.gather(feed_task, return_exceptions=True)
    await binance.close()
    provider.communicate("")
    return result


def measure(mode: str, signals: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "bench.analyst", "--child", mode, "--signals", str(signals)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=["alone", "analyst", "provider"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "provider":
        asyncio.run(serve_chat())
        return
    if args.child:
        tape = build_tape(200_000)
        print(json.dumps(asyncio.run(run(tape, args.child == "analyst", args.signals))))
        return
    runs: dict[str, list[dict[str, float]]] = {"alone": [], "analyst": []}
    for _ in range(args.repeat):
        for mode in runs:
            runs[mode].append(measure(mode, args.signals))
    alone = statistics.median(r["ingest_rate"] for r in runs["alone"])
    beside = statistics.median(r["ingest_rate"] for r in runs["analyst"])
    explain = statistics.median(r["explain_rate"] for r in runs["analyst"])
    share = min(r["by_model"] for r in runs["analyst"])
    concurrency = int(runs["analyst"][0]["concurrency"])
    print(f"analyst benchmark: {args.signals:,} explanations, provider answering in 50 ms, median of {args.repeat}")
    print(f"explanations/s at AI_CONCURRENCY={concurrency}: {explain:,.1f} ({share:.0%} written by the model)")
    print(f"ingestion without the analyst: {alone:,.0f} trades/s; with it: {beside:,.0f} trades/s "
          f"({(beside - alone) / alone:+.1%}; target: no worse than -10%)")


if __name__ == "__main__":
    main()

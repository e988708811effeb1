"""The `flowbot` command line. It imports only what the chosen command uses (each command's modules inside its
function), so `flowbot --help` is instant and a process never loads the SDKs of front ends it does not run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from storage.spans import FLOW_SPANS_MS

if TYPE_CHECKING:
    from core.settings import Settings


def _loaded() -> None:
    """A long one-shot command has imported its modules: when run() held the garbage collector off meanwhile, it
    collects again from now on, with what was loaded so far (it lives until the process ends) out of its scans."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


async def run_replay(settings: Settings, args: argparse.Namespace) -> int:
    from flowbot.replay import replay

    _loaded()

    missing = [p for p in args.paths if not p.exists()]
    for path in missing:
        print(f"flowbot replay: no such file: {path}", file=sys.stderr)
    paths = [p for p in args.paths if p.exists()]
    if not paths:
        return 1
    report = await replay(paths, settings, speed=args.speed, symbol=args.symbol, as_json=args.jsonl)
    return 1 if missing or report.unreadable else 0


REPORTS_EXTRA = ("flowbot evaluate: its outcomes, summary and report are made with pandas, which this install lacks:"
                 " pip install 'flowbot[reports]' (in a checkout: pip install -e '.[reports]')")


async def run_evaluate(settings: Settings, args: argparse.Namespace) -> int:
    try:
        from flowbot.evaluate import evaluate
    except ImportError as exc:
        if exc.name != "pandas":
            raise
        print(REPORTS_EXTRA, file=sys.stderr)
        return 2
    _loaded()

    missing = [path for path in args.paths if not path.exists()]
    for path in missing:
        print(f"flowbot evaluate: no such file: {path}", file=sys.stderr)
    if missing:
        return 2
    await evaluate(args.paths, settings, args.horizons, args.out, symbol=args.symbol)
    return 0


def show_stats(settings: Settings, symbol: str | None) -> int:
    from presentation.track_record_text import NO_RECORD, record_lines
    from storage.feature_store import FeatureStore
    from storage.track_record import TrackRecords

    data_dir = Path(settings.data_dir)
    if not (data_dir / "flowbot.db").exists():
        print(NO_RECORD)
        return 0
    records = TrackRecords(data_dir / "flowbot.db", FeatureStore(data_dir))
    try:
        for name in [symbol] if symbol else records.features.symbols():
            records.update(name)
        lines = record_lines(records.records(symbol))
    finally:
        records.close()
    print("\n".join(lines) or NO_RECORD)
    return 0


def show_flow(settings: Settings, args: argparse.Namespace) -> int:
    from presentation.flow_text import format_flow
    from storage.feature_store import FeatureStore
    from storage.flow_query import flow_report

    symbol = args.symbol
    report = flow_report(FeatureStore(Path(settings.data_dir)), symbol, args.window)
    if report is None:
        print(f"No stored flow for {symbol} in {settings.data_dir}: run `flowbot run` or `flowbot replay` first "
              f"(stored symbols: {', '.join(FeatureStore(Path(settings.data_dir)).symbols()) or 'none'}).")
        return 1
    print(format_flow(report, time.time()))
    return 0


def _run_until_signalled(main: Coroutine[Any, Any, None]) -> int:
    async def runner() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await main

    from core.health_server import HealthPortError

    try:
        asyncio.run(runner())
    except HealthPortError as exc:
        print(f"flowbot: {exc}", file=sys.stderr)
        return 1
    print("flowbot: stopped", file=sys.stderr)
    return 0


async def answer_question(settings: Settings, question: str) -> int:
    """`flowbot ask`: the answer on stdout (exit 0 whenever it answered)."""
    from ai.ask import Asker
    from ai.providers import ProviderChain, providers_from
    from flowbot.ai_config import ai_config
    from storage.feature_store import FeatureStore
    from storage.signal_store import SignalStore

    data_dir = Path(settings.data_dir)
    store = FeatureStore(data_dir)
    signal_store = SignalStore(data_dir / "flowbot.db")
    try:
        asker = Asker(
            ProviderChain(providers_from(ai_config(settings)), timeout=settings.ai_timeout).answer, store,
            symbols=store.symbols() if settings.all_symbols else settings.symbols, signal_store=signal_store,
            rate_limit=settings.ask_rate_limit,
        )
        print((await asker.ask(question)).text)
    finally:
        signal_store.close()
    return 0


def _symbol(text: str) -> str:
    symbol = text.strip().upper()
    if not symbol.isalnum() or not symbol.isascii():
        raise argparse.ArgumentTypeError(f"{text!r} is not a symbol (letters and digits, e.g. BTCUSDT)")
    return symbol


def _speed(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("speed must be 0 (as fast as possible) or positive")
    return value


def _horizons(text: str) -> dict[str, int]:
    from flowbot.horizons import parse_horizons

    try:
        return parse_horizons(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowbot", description="Order-flow alerts for Binance markets.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="engine, analyst and bots in one process (alerts on the console without a bot)")
    commands.add_parser("engine", help="an engine shard (SHARD_COUNT, SHARD_INDEX) publishing on BUS_URL")
    commands.add_parser("bot", help="the analyst and the bots, consuming the engine shards' events from BUS_URL")
    commands.add_parser("dashboard", help="the web dashboard alone on HEALTH_HOST:HEALTH_PORT, following BUS_URL")
    replay_parser = commands.add_parser("replay", help="replay Binance data files through the pipeline")
    replay_parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                               help="aggTrades/trades CSV dumps, JSON lines of WebSocket messages, REST JSON arrays")
    replay_parser.add_argument("--speed", type=_speed, default=0.0,
                               help="0 = as fast as possible (default); 10 = ten times the market's pace")
    replay_parser.add_argument("--symbol", type=_symbol, help="symbol of files whose name or content does not say it")
    replay_parser.add_argument("--jsonl", action="store_true", help="print signals as JSON lines")
    evaluate_parser = commands.add_parser("evaluate", help="replay files, then measure what every signal was worth")
    evaluate_parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files as for `flowbot replay`")
    evaluate_parser.add_argument("--horizons", default="1m,5m,15m,1h", type=_horizons,
                                 help="returns measured this long after each window (default 1m,5m,15m,1h)")
    evaluate_parser.add_argument("--out", type=Path, help="output folder (default DATA_DIR/evaluation)")
    evaluate_parser.add_argument("--symbol", type=_symbol, help="symbol of files whose name or content does not say it")
    stats_parser = commands.add_parser("stats", help="each kind's track record: alerts, share right after 15 min")
    stats_parser.add_argument("symbol", nargs="?", metavar="SYMBOL", type=_symbol)
    flow_parser = commands.add_parser("flow", help="print the stored flow summary of a symbol")
    flow_parser.add_argument("symbol", metavar="SYMBOL", type=_symbol)
    flow_parser.add_argument("--window", choices=list(FLOW_SPANS_MS), default="1h")
    commands.add_parser("doctor", help="check settings, DATA_DIR and that Binance, bots, AI providers and Redis answer")
    ask_parser = commands.add_parser("ask", help="answer a question about current flow, e.g. \"is BTC being bought?\"")
    ask_parser.add_argument("question", nargs="+", metavar="QUESTION")
    return parser


ONE_SHOT = frozenset({"replay", "evaluate", "stats", "flow"})  # commands that end once their output is written


def main(argv: list[str] | None = None) -> int:
    return _execute(build_parser().parse_args(argv))


def run() -> NoReturn:
    """The `flowbot` command. A one-shot command loads its modules with the garbage collector off (its scans of
    the growing heap took a tenth of a second of a replay's imports; see _loaded) and exits without the
    interpreter's teardown once its output and logs are flushed and its stores closed (freeing every object one
    by one took a third of a second after a replay)."""
    args = build_parser().parse_args()
    if args.command in ONE_SHOT:
        gc.disable()
    status = _execute(args)
    if args.command in ONE_SHOT:
        _exit_now(status)
    sys.exit(status)


def _exit_now(status: int) -> NoReturn:
    import logging
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (flowbot replay ... | head)
            stream.flush()
    os._exit(status)


def _execute(args: argparse.Namespace) -> int:
    """Load the settings and run the parsed command; its exit status."""
    from pydantic import ValidationError

    from core.logs import configure_logging
    from core.settings import Settings, settings_problems
    from storage.window_record import WindowDurationMismatch

    try:
        settings = Settings()
    except ValidationError as exc:
        print("flowbot: invalid settings:\n" + "\n".join(f"  {line}" for line in settings_problems(exc)),
              file=sys.stderr)
        return 2
    configure_logging(settings)
    try:
        return _command(args, settings)
    except WindowDurationMismatch as exc:
        print(f"flowbot: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.filename is None:
            return _stopped_by(exc, args.command)
        print(f"flowbot: cannot use DATA_DIR={settings.data_dir}: {exc.strerror or exc} ({exc.filename})",
              file=sys.stderr)
        return 1
    except Exception as exc:
        return _stopped_by(exc, args.command)


def _stopped_by(exc: BaseException, command: str) -> int:
    """An error nobody caught: logged through the masking handler (never a secret), with its traceback; exit 1."""
    import logging

    logging.getLogger("flowbot").critical("flowbot %s stopped: %s", command, type(exc).__name__, exc_info=exc)
    return 1


def _command(args: argparse.Namespace, settings: Settings) -> int:
    """Run the parsed command; its exit status."""
    if args.command == "run":
        from flowbot.processes import run_all

        return _run_until_signalled(run_all(settings))
    if args.command == "engine":
        from flowbot.processes import run_engine

        return _run_until_signalled(run_engine(settings))
    if args.command == "bot":
        from flowbot.processes import run_bots

        return _run_until_signalled(run_bots(settings))
    if args.command == "dashboard":
        from flowbot.processes import run_dashboard

        return _run_until_signalled(run_dashboard(settings))
    if args.command == "replay":
        return asyncio.run(run_replay(settings, args))
    if args.command == "evaluate":
        return asyncio.run(run_evaluate(settings, args))
    if args.command == "stats":
        return show_stats(settings, args.symbol)
    if args.command == "flow":
        return show_flow(settings, args)
    if args.command == "doctor":
        from flowbot.doctor import doctor

        return asyncio.run(doctor(settings, sys.stdout))
    if args.command == "ask":
        question = " ".join(args.question).strip()
        if not question:
            print('flowbot ask: the question is empty; ask e.g. flowbot ask "is BTC being bought right now?"',
                  file=sys.stderr)
            return 2
        return asyncio.run(answer_question(settings, question))
    return 2


if __name__ == "__main__":
    run()

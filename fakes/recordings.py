"""Loaders for the real recorded Binance market data kept outside the repository (../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

_ID_FIELDS = {"aggTrade": (("a",), ("f", "l")), "trade": (("t",),)}


def shared_data_dir() -> Path | None:
    """The recordings folder ($FLOWBOT_SHARED_DATA or <repo>/../shared/data); None if it does not exist."""
    env = os.environ.get("FLOWBOT_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    return path if path.is_dir() else None


def load_ws_recording(path: str | Path) -> list[dict[str, Any]]:
    """The combined-stream messages ({"stream":..., "data":{...}}) of a .jsonl recording, in file order."""
    with open(path, "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def load_rest_aggtrades(path: str | Path, symbol: str) -> list[dict[str, Any]]:
    """A REST aggTrades array as WebSocket-shaped aggTrade events (adds e, E = T, s)."""
    rows = orjson.loads(Path(path).read_bytes())
    return [{"e": "aggTrade", "E": row["T"], "s": symbol, **row} for row in rows]


def loop_recording(messages: list[dict[str, Any]], copies: int) -> list[dict[str, Any]]:
    """The recording repeated `copies` times; each symbol's ids shift by its id span, and its times by its
    own duration + 1 ms (a recording may join sessions months apart: one global shift would run into the future)."""
    if copies < 1:
        raise ValueError("copies must be >= 1")
    spans = _id_spans(messages)
    time_bounds: dict[str, tuple[int, int]] = {}
    for message in messages:
        data = message["data"]
        stamps = [data[k] for k in ("E", "T") if k in data]
        if stamps:
            low, high = time_bounds.get(data.get("s"), (min(stamps), max(stamps)))
            time_bounds[data.get("s")] = (min(low, *stamps), max(high, *stamps))
    time_shifts = {symbol: high - low + 1 for symbol, (low, high) in time_bounds.items()}
    out: list[dict[str, Any]] = []
    for copy in range(copies):
        for message in messages:
            data = dict(message["data"])
            for group, span in spans.get((data.get("s"), data.get("e")), ()):
                for key in group:
                    data[key] += copy * span
            time_shift = time_shifts.get(data.get("s"), 0)
            for key in ("E", "T"):
                if key in data:
                    data[key] += copy * time_shift
            out.append({"stream": message["stream"], "data": data})
    return out


def live_tape(messages: list[dict[str, Any]], start_ms: int, *, speed: float = 1.0,
               max_pause_ms: int = 1000) -> list[dict[str, Any]]:
    """The recording re-timed as one live session from start_ms: the time between consecutive messages divided by
    `speed`, and pauses longer than max_pause_ms (a recording may join sessions months apart) cut to it; each
    message's E keeps its distance from T. Ids, prices and sizes are unchanged."""
    out: list[dict[str, Any]] = []
    previous: int | None = None
    now = float(start_ms)
    for message in messages:
        data = dict(message["data"])
        trade_time = data.get("T", data.get("E", 0))
        if previous is not None:
            now += min(max(0, trade_time - previous), max_pause_ms) / speed
        previous = trade_time
        stamp = int(now)
        if "E" in data:
            data["E"] = stamp + max(0, data["E"] - trade_time)
        if "T" in data:
            data["T"] = stamp
        out.append({"stream": message["stream"], "data": data})
    return out


def _id_spans(messages: list[dict[str, Any]]) -> dict[tuple[str, str], list[tuple[tuple[str, ...], int]]]:
    """Per (symbol, event type): each group of id fields with its span (max - min + 1 over the recording)."""
    bounds: dict[tuple[str, str, tuple[str, ...]], tuple[int, int]] = {}
    for message in messages:
        data = message["data"]
        for group in _ID_FIELDS.get(data.get("e"), ()):
            values = [data[k] for k in group]
            key = (data["s"], data["e"], group)
            low, high = bounds.get(key, (min(values), max(values)))
            bounds[key] = (min(low, *values), max(high, *values))
    spans: dict[tuple[str, str], list[tuple[tuple[str, ...], int]]] = {}
    for (symbol, event, group), (low, high) in bounds.items():
        spans.setdefault((symbol, event), []).append((group, high - low + 1))
    return spans


def synthetic_symbols(messages: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """`count` markets from a recording's few: copy k of each symbol is named X<k>SYMBOL (its stream too), with the
    recording's real prices, sizes, ids and times; copies interleave message by message, in the recording's order."""
    symbols = sorted({m["data"]["s"] for m in messages})
    copies = -(-count // len(symbols))
    names = sorted(f"X{k:03d}{symbol}" for k in range(copies) for symbol in symbols)[:count]
    wanted = set(names)
    out: list[dict[str, Any]] = []
    for message in messages:
        data = message["data"]
        event = message["stream"].partition("@")[2]
        for k in range(copies):
            name = f"X{k:03d}{data['s']}"
            if name in wanted:
                out.append({"stream": f"{name.lower()}@{event}", "data": {**data, "s": name}})
    return out


def stamped_live(messages: list[dict[str, Any]], rate: float, start_ms: int) -> list[dict[str, Any]]:
    """The messages as a live market played at `rate` messages a second from `start_ms`: each one's event and trade
    time (E, T) is when the fake sends it, so a client's lag behind the market is its lag behind those times."""
    return [{**m, "data": {**m["data"], "E": start_ms + int(i * 1000 / rate), "T": start_ms + int(i * 1000 / rate)}}
            for i, m in enumerate(messages)]

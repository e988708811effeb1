"""Bus events to and from bytes (orjson), round-tripping exactly: big ints, tuples and non-finite floats included.

JSON has no tuples, no integers beyond 64 bits and no inf/nan, so such values travel tagged: a one-key object
{"$int": "123..."}, {"$tuple": [...]}, {"$float": "inf"}; a dict of the event whose keys start with "$" travels
as {"$dict": {...}} so it is never mistaken for a tag.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import orjson

from core.events import (
    Direction,
    Event,
    FeedHealthReport,
    FeedStatusChanged,
    Gap,
    GapUnfilled,
    PriceTick,
    Signal,
    StoreHealthChanged,
    TradeBatch,
    WindowClosed,
)
from core.features import WindowFeatures
from core.trades import Trade

VERSION = 1
EVENT_KINDS: dict[str, type[Event]] = {
    kind.__name__: kind
    for kind in (TradeBatch, GapUnfilled, FeedHealthReport, FeedStatusChanged, StoreHealthChanged, WindowClosed, Signal,
                 PriceTick)
}
_INT64 = 2**63
_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (float, int), "bool": (bool,), "dict[str, Any]": (dict,),
    "SignalKind": (str,), "Direction": (str,),
}
_PARSED: dict[str, Callable[[Any], Any]] = {"Direction": Direction}  # fields that travel as str, typed on decode


class CodecError(ValueError):
    """An event that cannot be encoded, or bytes that are not an event this version knows."""


def encode(event: Event) -> bytes:
    """The event as JSON bytes: {"v": 1, "kind": "Signal", "data": {...}}."""
    kind = type(event).__name__
    if EVENT_KINDS.get(kind) is not type(event):
        raise CodecError(f"not a bus event kind: {kind}")
    try:
        data = _ENCODERS[type(event)](event)
        return orjson.dumps({"v": VERSION, "kind": kind, "data": data})
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise CodecError(f"cannot encode {kind}: {exc}") from exc


def decode(payload: bytes) -> Event:
    """The event encoded in `payload`; CodecError when it is not valid JSON or not a known, well-formed event."""
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"not JSON: {exc}") from exc
    if not isinstance(message, dict) or message.get("v") != VERSION:
        raise CodecError(f"not a version {VERSION} event message")
    kind = EVENT_KINDS.get(message.get("kind"))  # type: ignore[arg-type]
    data = message.get("data")
    if kind is None or not isinstance(data, dict):
        raise CodecError(f"unknown event kind: {message.get('kind')!r}")
    try:
        return _DECODERS[kind](data)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise CodecError(f"malformed {kind.__name__}: {exc!r}") from exc


def pack(value: Any) -> Any:
    """A free-form value (evidence, health snapshot) in JSON-safe form, tagging what JSON cannot hold."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else {"$int": str(value)}
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, list):
        return [pack(item) for item in value]
    if isinstance(value, tuple):
        return {"$tuple": [pack(item) for item in value]}
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("dict keys must be strings")
        packed = {key: pack(item) for key, item in value.items()}
        return {"$dict": packed} if any(key.startswith("$") for key in value) else packed
    raise TypeError(f"cannot encode a {type(value).__name__}")


def unpack(value: Any) -> Any:
    """The inverse of `pack`."""
    if isinstance(value, list):
        return [unpack(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (tag, inner), = value.items()
        if tag == "$int":
            return int(inner)
        if tag == "$float":
            return float(inner)
        if tag == "$tuple":
            return tuple(unpack(item) for item in inner)
        if tag == "$dict":
            return {key: unpack(item) for key, item in inner.items()}
    if any(key.startswith("$") for key in value):
        raise ValueError(f"unknown tag in {sorted(value)}")
    return {key: unpack(item) for key, item in value.items()}


def _record(obj: Any) -> dict[str, Any]:
    """A flat dataclass of str/int/float/bool fields as a dict."""
    return {f.name: pack(getattr(obj, f.name)) for f in fields(obj)}


def _build(cls: type, data: dict[str, Any]) -> Any:
    """The flat dataclass `cls` from its dict, each field checked against its annotation."""
    values = {}
    for f in fields(cls):
        value = unpack(data[f.name])
        allowed = _TYPES.get(str(f.type))
        wrong_bool = isinstance(value, bool) and allowed is not None and bool not in allowed
        if allowed is not None and (wrong_bool or not isinstance(value, allowed)):
            raise TypeError(f"{cls.__name__}.{f.name} must be {f.type}, not {type(value).__name__}")
        parse = _PARSED.get(str(f.type))
        values[f.name] = value if parse is None else parse(value)
    return cls(**values)


def _trade(row: list[Any]) -> Trade:
    if len(row) != len(Trade._fields):
        raise ValueError(f"a trade has {len(Trade._fields)} fields, not {len(row)}")
    trade = Trade(*(unpack(v) for v in row))
    if not (isinstance(trade.symbol, str) and isinstance(trade.is_sell, bool)):
        raise TypeError("a trade needs a str symbol and a bool is_sell")
    if any(not isinstance(v, int) or isinstance(v, bool) for v in trade[1:-1]):
        raise TypeError("trade ids, amounts and times must be ints")
    return trade


def _trade_batch(data: dict[str, Any]) -> TradeBatch:
    symbol = data["symbol"]
    if not isinstance(symbol, str):
        raise TypeError("TradeBatch.symbol must be str")
    return TradeBatch(symbol, tuple(_trade(row) for row in data["trades"]))


def _window_closed(data: dict[str, Any]) -> WindowClosed:
    revision = unpack(data["revision"])
    if not isinstance(revision, int) or isinstance(revision, bool):
        raise TypeError("WindowClosed.revision must be int")
    return WindowClosed(_build(WindowFeatures, data["features"]), revision)


def _feed_health(data: dict[str, Any]) -> FeedHealthReport:
    snapshot = unpack(data["snapshot"])
    if not isinstance(snapshot, dict):
        raise TypeError("FeedHealthReport.snapshot must be a dict")
    return FeedHealthReport(snapshot)


_ENCODERS: dict[type[Event], Callable[[Any], dict[str, Any]]] = {
    TradeBatch: lambda e: {"symbol": e.symbol, "trades": [[pack(v) for v in t] for t in e.trades]},
    GapUnfilled: lambda e: {"gap": _record(e.gap)},
    FeedHealthReport: lambda e: {"snapshot": pack(e.snapshot)},
    FeedStatusChanged: _record,
    StoreHealthChanged: _record,
    WindowClosed: lambda e: {"features": _record(e.features), "revision": pack(e.revision)},
    Signal: _record,
    PriceTick: _record,
}

_DECODERS: dict[type[Event], Callable[[dict[str, Any]], Event]] = {
    TradeBatch: _trade_batch,
    GapUnfilled: lambda d: GapUnfilled(_build(Gap, d["gap"])),
    FeedHealthReport: _feed_health,
    FeedStatusChanged: lambda d: _build(FeedStatusChanged, d),
    StoreHealthChanged: lambda d: _build(StoreHealthChanged, d),
    WindowClosed: _window_closed,
    Signal: lambda d: _build(Signal, d),
    PriceTick: lambda d: _build(PriceTick, d),
}

"""Binance message formats: turning decoded WebSocket and REST payloads into Trade records.

Only exchange format knowledge lives here; rules about what a sane trade is live in
engine.connection.validator. Malformed input raises InvalidMessage with a short reason code.
"""

from __future__ import annotations

from typing import Any

from core.futures import Liquidation, MarkPrice
from core.trades import Trade, parse_scaled

SERVER_SHUTDOWN = "serverShutdown"


class InvalidMessage(ValueError):
    """A message that cannot become a trade; `reason` is a stable code for counters."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def unwrap(message: Any) -> dict[str, Any]:
    """The event inside a combined-stream wrapper, or the bare event itself."""
    if type(message) is not dict:
        raise InvalidMessage("not_an_object")
    data = message.get("data", message)
    if type(data) is not dict:
        raise InvalidMessage("not_an_object")
    return data


def trade_from_aggtrade(d: dict[str, Any]) -> Trade:
    """An aggTrade event (`a`, `f`, `l`) as a Trade; REST rows must carry `s` and `E` added by the caller."""
    try:
        s, a, p, q, f, last, t, e, m = d["s"], d["a"], d["p"], d["q"], d["f"], d["l"], d["T"], d["E"], d["m"]
    except KeyError as exc:
        raise InvalidMessage("missing_field", str(exc)) from None
    if not (
        type(a) is int and type(f) is int and type(last) is int and type(t) is int and type(e) is int
        and type(m) is bool and type(s) is str and type(p) is str and type(q) is str
    ):
        raise InvalidMessage("wrong_type", _type_summary(d, ("s", "a", "p", "q", "f", "l", "T", "E", "m")))
    if p[-9:-8] == "." and q[-9:-8] == ".":  # hot path: parse_scaled's 8-decimal case, without two calls
        pd = p.replace(".", "", 1)
        qd = q.replace(".", "", 1)
        if pd.isdigit() and qd.isdigit() and pd.isascii() and qd.isascii():
            return Trade(s, a, f, last, int(pd), int(qd), t, e, m)
    price = parse_scaled(p)
    qty = parse_scaled(q)
    if price is None or qty is None:
        raise InvalidMessage("bad_decimal", f"p={p!r} q={q!r}")
    return Trade(s, a, f, last, price, qty, t, e, m)


def trade_from_trade(d: dict[str, Any]) -> Trade:
    """A trade-stream event (`t`) as a Trade covering exactly that trade id."""
    try:
        s, tid, p, q, t, e, m = d["s"], d["t"], d["p"], d["q"], d["T"], d["E"], d["m"]
    except KeyError as exc:
        raise InvalidMessage("missing_field", str(exc)) from None
    if not (
        type(tid) is int and type(t) is int and type(e) is int and type(m) is bool
        and type(s) is str and type(p) is str and type(q) is str
    ):
        raise InvalidMessage("wrong_type", _type_summary(d, ("s", "t", "p", "q", "T", "E", "m")))
    price = parse_scaled(p)
    qty = parse_scaled(q)
    if price is None or qty is None:
        raise InvalidMessage("bad_decimal", f"p={p!r} q={q!r}")
    return Trade(s, tid, tid, tid, price, qty, t, e, m)


_ORDER_TEXT = ("s", "S", "o", "f", "q", "p", "ap", "X", "l", "z")


def liquidation_from_force_order(d: dict[str, Any]) -> Liquidation:
    """A forceOrder event ({"e","E","o":{...}}) as a Liquidation; amounts exact."""
    order = d.get("o")
    if type(order) is not dict:
        raise InvalidMessage("missing_field", "'o' (the liquidation order)")
    try:
        s, side, kind, tif, q, p, ap, status, last, filled = (order[k] for k in _ORDER_TEXT)
        t, e = order["T"], d["E"]
    except KeyError as exc:
        raise InvalidMessage("missing_field", str(exc)) from None
    if not (all(type(order[k]) is str for k in _ORDER_TEXT) and type(t) is int and type(e) is int):
        raise InvalidMessage("wrong_type", _type_summary(order, (*_ORDER_TEXT, "T")))
    if side not in ("BUY", "SELL"):
        raise InvalidMessage("bad_side", repr(side))
    amounts = [parse_scaled(text) for text in (q, p, ap, last, filled)]
    if None in amounts:
        raise InvalidMessage("bad_decimal", f"q={q!r} p={p!r} ap={ap!r} l={last!r} z={filled!r}")
    qty, price, avg_price, last_qty, filled_qty = (int(a or 0) for a in amounts)
    return Liquidation(s, side == "SELL", kind, tif, qty, price, avg_price, status, last_qty, filled_qty, t, e)


def mark_from_mark_price_update(d: dict[str, Any]) -> MarkPrice:
    """A markPriceUpdate event as a MarkPrice: mark `p`, index `i`, funding rate `r` (signed), next funding `T`."""
    try:
        s, p, i, r, t, e = d["s"], d["p"], d["i"], d["r"], d["T"], d["E"]
    except KeyError as exc:
        raise InvalidMessage("missing_field", str(exc)) from None
    if not (type(s) is str and type(p) is str and type(i) is str and type(r) is str and type(t) is int
            and type(e) is int):
        raise InvalidMessage("wrong_type", _type_summary(d, ("s", "p", "i", "r", "T", "E")))
    mark, index = parse_scaled(p), parse_scaled(i)
    rate = parse_scaled(r[1:]) if r.startswith("-") else parse_scaled(r)
    if mark is None or index is None or rate is None:
        raise InvalidMessage("bad_decimal", f"p={p!r} i={i!r} r={r!r}")
    return MarkPrice(s, mark, index, -rate if r.startswith("-") else rate, t, e)


def rest_row_to_event(row: dict[str, Any], symbol: str) -> dict[str, Any]:
    """A REST aggTrades row in the shape of a WebSocket aggTrade event (symbol and event time added)."""
    if type(row) is not dict:
        raise InvalidMessage("not_an_object")
    return {**row, "s": symbol, "E": row.get("T")}


def _type_summary(d: dict[str, Any], keys: tuple[str, ...]) -> str:
    return ",".join(f"{k}:{type(d[k]).__name__}" for k in keys)

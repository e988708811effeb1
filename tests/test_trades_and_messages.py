"""Parsing Binance messages into exact trade records, and the validator's rules."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.trades import parse_scaled
from engine.venues.binance.messages import InvalidMessage, trade_from_aggtrade, trade_from_trade, unwrap
from engine.venues.binance.rules import binance_validator


@given(st.decimals(min_value=0, max_value=10**12, places=8, allow_nan=False, allow_infinity=False))
def test_parse_scaled_is_exact_for_any_8_decimal_amount(value: Decimal) -> None:
    for text in (f"{value:.8f}", f"{value:f}"):
        assert parse_scaled(text) == int(Decimal(text) * 10**8)


@pytest.mark.parametrize("text", ["-1", "1e5", "nan", " 1", "1_000", "1.2.3", "", ".5", "1.000000001", "١٢"])
def test_parse_scaled_rejects_what_is_not_a_plain_decimal(text: str) -> None:
    assert parse_scaled(text) is None


def test_every_spot_aggtrade_parses_to_its_exact_values(shared_data) -> None:
    lines = (shared_data / "binance-spot-aggtrade-ws.jsonl").read_bytes().splitlines()
    for line in lines:
        data = orjson.loads(line)["data"]
        trade = trade_from_aggtrade(unwrap(orjson.loads(line)))
        assert trade.price_decimal == Decimal(data["p"])
        assert trade.qty_decimal == Decimal(data["q"])
        assert (trade.symbol, trade.id, trade.first_id, trade.last_id) == (data["s"], data["a"], data["f"], data["l"])
        assert (trade.trade_time, trade.event_time) == (data["T"], data["E"])
        assert trade.side == ("sell" if data["m"] else "buy")
    assert len(lines) == 3178


def test_usdm_prices_with_few_decimals_stay_exact(shared_data) -> None:
    for line in (shared_data / "binance-usdm-aggtrade-ws.jsonl").read_bytes().splitlines():
        data = orjson.loads(line)["data"]
        trade = trade_from_aggtrade(data)
        assert trade.price_decimal == Decimal(data["p"]) and trade.qty_decimal == Decimal(data["q"])


def test_trade_stream_record_covers_exactly_its_trade_id(shared_data) -> None:
    line = (shared_data / "binance-spot-ethusdt-trade-ws.jsonl").read_bytes().splitlines()[0]
    data = orjson.loads(line)["data"]
    trade = trade_from_trade(data)
    assert trade.id == trade.first_id == trade.last_id == data["t"]
    assert trade.is_sell is data["m"]


AGG = {"e": "aggTrade", "E": 1617566591315, "s": "BTCUSDT", "a": 1, "p": "58001.03000000", "q": "0.08620500",
       "f": 10, "l": 10, "T": 1617566591314, "m": True, "M": True}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"p": None}, "missing_field"),
        ({"a": "1"}, "wrong_type"),
        ({"m": "true"}, "wrong_type"),
        ({"p": 58001.03}, "wrong_type"),
        ({"q": "abc"}, "bad_decimal"),
    ],
)
def test_malformed_aggtrades_are_refused_with_a_reason(change: dict, reason: str) -> None:
    data = {**AGG, **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(InvalidMessage) as caught:
        trade_from_aggtrade(data)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"p": "0.00000000"}, "non_positive_price"),
        ({"q": "0"}, "non_positive_quantity"),
        ({"T": 1_400_000_000_000}, "timestamp_before_binance"),
        ({"T": 1_617_566_591_314 + 61_000, "E": 1_617_566_591_314 + 61_000}, "timestamp_in_future"),
        ({"s": "DOGEUSDT"}, "unknown_symbol"),
    ],
)
def test_validator_counts_each_rejection_reason(change: dict, reason: str) -> None:
    validator = binance_validator(symbols=frozenset({"BTCUSDT"}), live=True, clock=lambda: 1_617_566_591.314)
    good = trade_from_aggtrade(AGG)
    assert validator.accept(good)
    assert not validator.accept(trade_from_aggtrade({**AGG, **change}))
    assert validator.rejected == {reason: 1}


def test_replay_validation_does_not_check_the_clock() -> None:
    validator = binance_validator(live=False, clock=lambda: 0.0)
    assert validator.accept(trade_from_aggtrade(AGG))

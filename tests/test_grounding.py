"""The grounding check: every number an AI text cites must be in its snapshot, after rounding as written."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ai.grounding import GroundingResult, check_grounding, snapshot_numbers

SNAPSHOT = {
    "symbol": "BTCUSDT",
    "signal": {"kind": "whale", "direction": "buy", "whale_buy_quote": 1234567.89, "whale_count": 3},
    "context": {
        "5m": {"price_change_pct": -0.42, "buy_share_pct": 61.3, "delta": -12.5, "close": 97123.45},
        "1h": {"price_change_pct": 1.08, "volume": Decimal("8123.4567"), "trades": 45210},
    },
}


def check(text: str, snapshot: object = SNAPSHOT, question: str = "") -> GroundingResult:
    """check_grounding with the shared snapshot by default."""
    return check_grounding(text, snapshot, question)


def test_grounded_english_explanation_passes() -> None:
    text = (
        "BTCUSDT fell 0.42% over the last 5m while buyers took 61.3% of the volume: 3 whale trades bought "
        "$1.23M, delta -12.5 BTC, close 97,123.45. Over 1h price is up 1.08% on 8,123.46 BTC and 45,210 trades."
    )
    result = check(text)
    assert result.ok and result
    assert result.unsupported == []
    assert result.numbers == [
        "0.42%", "5m", "61.3%", "3", "$1.23M", "-12.5", "97,123.45", "1h", "1.08%", "8,123.46", "45,210",
    ]


def test_grounded_portuguese_explanation_passes() -> None:
    text = (
        "BTCUSDT caiu 0,42% nos últimos 5 minutos, com 61,3% do volume comprador. Baleias compraram "
        "US$ 1,23 milhão em 3 negócios; o delta foi de -12,5 BTC e o fechamento, 97.123,45. Em 1 hora: "
        "alta de 1,08%, 8.123,5 BTC negociados e 45,2 mil negócios."
    )
    assert check(text).unsupported == []


def test_invented_number_fails_and_is_listed() -> None:
    result = check("BTCUSDT fell 0.42% while buyers took 64.8% of the volume, 7 whales")
    assert not result.ok and not result
    assert result.numbers == ["0.42%", "64.8%", "7"]
    assert result.unsupported == ["64.8%", "7"]


@pytest.mark.parametrize(
    ("written", "ok"),
    [
        ("1,234.57", True), ("1234.6", True), ("1,235", True), ("1.23k", True), ("1.2k", True), ("1k", True),
        ("1234.5678", True), ("1,234.5678", True), ("1234.56780", True),
        ("1,234.56", False), ("1234.5", False), ("1,234", False), ("1.24k", False), ("1234.567", False),
    ],
)
def test_rounding_as_written(written: str, ok: bool) -> None:
    assert check(f"the volume was {written}", {"volume": 1234.5678}).ok is ok


@pytest.mark.parametrize(("value", "written"), [(0.125, "0.12"), (0.125, "0.13"), (2.5, "2"), (2.5, "3")])
def test_half_up_and_half_even_both_accepted(value: float, written: str) -> None:
    assert check(f"ratio {written}", {"ratio": value}).ok


def test_percent_matches_the_number_as_it_appears_and_is_never_derived() -> None:
    assert check("buyers took 61.3% of it", {"buy_share_pct": 61.3}).ok
    assert not check("buyers took 61.3% of it", {"buy_share": 0.613}).ok
    assert check("a share of 0.61", {"buy_share": 0.613}).ok


def test_sign_in_words_accepts_the_absolute_value_but_a_written_sign_must_agree() -> None:
    falling = {"price_change_pct": -0.42}
    for text in ("price fell 0.42%", "price moved -0.42%", "price moved \u22120.42%", "a drop of (-0.42%)"):
        assert check(text, falling).ok, text
    assert not check("price moved +0.42%", falling).ok
    assert not check("price moved -0.42%", {"price_change_pct": 0.42}).ok
    assert check("sellers were 12.5 BTC ahead", {"delta": -12.5}).ok


def test_a_hyphen_between_numbers_is_no_minus_sign() -> None:
    assert check("between 10-20 trades", {"low": 10, "high": 20}).ok


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("$1.23M", 1234567.89), ("1.2 million", 1234567.89), ("1.23m", 1234567.89), ("$1m", 1234567.89),
        ("US$ 1,2 milhão", 1234567.89), ("1,23 milhões", 1234567.89), ("0.0012B", 1234567.89),
        ("2.1B", 2_100_000_000), ("2.1 billion", 2_100_000_000), ("2,1 bilhões", 2_100_000_000), ("2.1bn", 2.1e9),
        ("12,5 mil", 12_500), ("12.5k", 12_500), ("12.5K", 12_500), ("12.5 thousand", 12_500), ("13k", 12_500),
    ],
)
def test_scaled_numbers(written: str, value: float) -> None:
    assert check(f"whales bought {written}", {"quote": value}).ok


@pytest.mark.parametrize("written", ["1.3M", "1,3 milhão", "11k", "2.2B", "1234567.89k"])
def test_scaled_numbers_out_of_rounding_fail(written: str) -> None:
    assert not check(f"whales bought {written}", {"quote": 1234567.89, "other": 12_500, "big": 2.1e9}).ok


def test_m_is_minutes_after_an_integer_and_millions_after_a_decimal_or_a_currency() -> None:
    snapshot = {"5m": {"quote": 5_000_000.0}}
    assert check("in the last 5m", snapshot).ok  # the 5m window, present as a key
    assert check("whales bought 5.0m", snapshot).ok
    assert check("whales bought $5m", snapshot).ok
    assert not check("in the last 5m", {"quote": 5}).ok  # a duration, not the number 5


@pytest.mark.parametrize(
    ("text", "snapshot", "question", "ok"),
    [
        ("over the last 15m", {"15m": {"delta": 1}}, "", True),
        ("over the last 15 minutes", {"15m": {"delta": 1}}, "", True),
        ("over the last 15-minute window", {"window": "15m"}, "", True),
        ("over the last 1 hour", {"context": {"1h": {}}}, "", True),
        ("over the last 60 minutes", {"context": {"1h": {}}}, "", True),  # the same duration
        ("nos últimos 5 minutos", {"price_change_pct_5m": 0.1}, "", True),
        ("na última 1 hora", {"span": "1h"}, "", True),
        ("in the last 24h", {}, "what happened in the last 24 hours?", True),
        ("in the last 4H", {"4h": {}}, "", True),
        ("over the last 7m", {"15m": {"delta": 1}}, "", False),
        ("over the last 7m", {"whale_count": 7}, "", False),  # a count of 7 is no 7-minute window
        ("in the last 24h", {"1h": {}}, "and the last hour?", False),
    ],
)
def test_durations_exempt_only_when_in_the_snapshot_or_question(
    text: str, snapshot: dict[str, object], question: str, ok: bool
) -> None:
    result = check(text, snapshot, question)
    assert result.ok is ok
    assert len(result.numbers) == 1


def test_unsupported_duration_is_listed_as_written() -> None:
    assert check("over the last 7m", {"15m": {}}).unsupported == ["7m"]


WINDOW = {"close": 97123.45, "window_start": "2026-01-01 14:05:30 UTC"}  # snapshots carry their window's time


@pytest.mark.parametrize(
    "text",
    [
        "At 14:05 UTC price was 97,123.45",
        "At 14:05:30 price was 97,123.45",
        "Às 14h05 o preço era 97.123,45",
        "On 2026-01-01 price was 97,123.45",
        "On 2026-01-01T14:05:30Z price was 97,123.45",
        "Em 01/01/2026 o preço era 97.123,45",
        "On Jan 1, 2026 price was 97,123.45",
        "Em 1 de janeiro de 2026 o preço era 97.123,45",
    ],
)
def test_times_and_dates_the_snapshot_holds_are_exempt(text: str) -> None:
    result = check(text, WINDOW)
    assert result.ok, result
    assert len(result.numbers) == 1


def test_a_time_or_date_the_data_does_not_hold_is_rejected() -> None:
    assert check("At 09:13 UTC price was 97,123.45", WINDOW).unsupported == ["09", "13"]
    assert not check("On 2025-07-04 price was 97,123.45", WINDOW).ok


def test_a_time_named_in_the_question_is_exempt() -> None:
    assert check_grounding("Since 09:13 price was 97,123.45", WINDOW, question="what happened since 09:13?").ok


def test_a_bare_year_must_be_in_the_snapshot() -> None:
    assert not check("the biggest whale of 2026", {"close": 1}).ok
    assert check("the biggest whale of 2026", {"year": 2026}).ok


def test_list_markers_ignored() -> None:
    text = "1. Price fell 0.42%\n2) Buyers took 61.3%\n  3. Delta -12.5\n- 4. Three whales"
    result = check(text)
    assert result.ok, result
    assert result.numbers == ["0.42%", "61.3%", "-12.5"]
    assert not check("1.5 BTC changed hands", {"volume": 3}).ok  # 1.5 at a line start is a number


def test_symbol_and_identifier_digits_ignored() -> None:
    snapshot = {"symbol": "1000PEPEUSDT", "contract": "BTCUSDT_260327", "price_change_pct": 2.5}
    result = check("1000PEPEUSDT rose 2.5%; 1000PEPE leads, BTCUSDT_260327 lags", snapshot)
    assert result.ok, result
    assert result.numbers == ["2.5%"]
    assert not check("1000 PEPE bought", snapshot).ok  # a bare 1000 is a number
    assert not check("volume up 9x", snapshot).ok  # a number touching letters is still a number
    assert not check("ETH9 rose", snapshot).ok


@pytest.mark.parametrize(
    ("text", "value", "ok"),
    [
        ("the volume was 1,234", 1234, True),  # English: a comma then 3 digits groups thousands
        ("the volume was 1,234", 1.234, False),
        ("the volume was 1.234", 1.234, True),  # English: a point is a decimal point
        ("the volume was 1.234", 1234, False),
        ("o volume foi de 1.234", 1234, True),  # Portuguese words: a point then 3 digits groups thousands
        ("o volume foi de 1,234", 1.234, True),
        ("caiu 0,42% e o volume foi 1.234", 1234, True),  # an unambiguous 0,42 settles the style
        ("fell 0.42% and volume was 1,234", 1234, True),
        ("queda de 0.42% e volume de 1.234", 1.234, True),  # decimals written with points, even in Portuguese
        ("the volume was 1,234,567", 1234567, True),
        ("o volume foi 1.234.567", 1234567, True),
        ("the volume was 1,234,567.89", 1234567.89, True),
        ("o volume foi 1.234.567,89", 1234567.89, True),
        ("the volume was 0,420", 0.42, True),  # a 0 head cannot group thousands
        ("the volume was 1,2345", 1.2345, True),  # more than 3 digits after the comma: decimal
        ("the volume was 1,23", 1.23, True),
        ("the volume was 1234,567", 1234.567, True),  # a head of 4 digits cannot group thousands
        ("the volume was 1,2,3", 123, False),  # malformed groups match nothing
        ("the volume was 12,34,567", 1234567, False),
    ],
)
def test_ambiguous_number_formats(text: str, value: float, ok: bool) -> None:
    assert check(text, {"volume": value, "price_change_pct": -0.42}).ok is ok


def test_text_without_numbers_is_grounded() -> None:
    for text in ("", "Buyers dominated the tape.", "At 14:05 UTC on 2026-01-01"):
        assert check(text, WINDOW) == GroundingResult(True, [], [])


def test_huge_numbers_are_rejected_not_crashed() -> None:
    assert not check("volume " + "9" * 80 + "." + "9" * 80, {"volume": 1}).ok


def test_snapshot_numbers() -> None:
    snapshot = {
        "a": 1, "b": 0.1, "c": Decimal("2.50"), "d": "-0.42", "e": "1234.5", "f": True, "g": None,
        "h": float("nan"), "i": "BTCUSDT", "j": [3, (4.5, {6})], 7: "5m", "k": " 8 ", "l": "1e3",
    }
    assert snapshot_numbers(snapshot) == [
        Decimal(1), Decimal("0.1"), Decimal("2.50"), Decimal("-0.42"), Decimal("1234.5"),
        Decimal(3), Decimal("4.5"), Decimal(6), Decimal(7), Decimal(8), Decimal(1000),
    ]
    assert str(snapshot_numbers([0.1])[0]) == "0.1"  # via repr, not the binary expansion


def test_numpy_scalars_are_numbers() -> None:
    snapshot = {"a": np.float64(0.1), "b": np.int64(5), "c": np.float32(0.25), "d": np.bool_(True)}
    assert snapshot_numbers(snapshot) == [Decimal("0.1"), Decimal(5), Decimal("0.25")]
    assert check("0.1, 5 and 0.25", snapshot).ok


magnitudes = st.one_of(
    st.integers(min_value=-10**12, max_value=10**12),
    st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=-10**9, max_value=10**9, places=6, allow_nan=False, allow_infinity=False),
)


@given(
    values=st.lists(magnitudes, min_size=1, max_size=30),
    data=st.data(),
    places=st.integers(min_value=0, max_value=4),
    rounding=st.sampled_from([ROUND_HALF_UP, ROUND_HALF_EVEN]),
    grouped=st.booleans(),
    percent=st.booleans(),
    drop_sign=st.booleans(),
)
def test_any_snapshot_number_rounded_as_written_is_accepted(
    values: list[object], data: st.DataObject, places: int, rounding: str, grouped: bool, percent: bool,
    drop_sign: bool,
) -> None:
    value = snapshot_numbers([data.draw(st.sampled_from(values))])[0]
    written = value.quantize(Decimal(1).scaleb(-places), rounding)
    if drop_sign:
        written = abs(written)
    text = f"The value was {written:,}" if grouped else f"The value was {written}"
    result = check(text + ("%" if percent else "") + " today.", {"values": values})
    assert result.ok, (text, result)


@given(
    values=st.lists(magnitudes, min_size=1, max_size=30),
    number=st.decimals(min_value=-10**9, max_value=10**9, places=4, allow_nan=False, allow_infinity=False),
    places=st.integers(min_value=0, max_value=4),
    signed=st.booleans(),
)
def test_a_number_beyond_rounding_of_every_snapshot_number_is_rejected(
    values: list[object], number: Decimal, places: int, signed: bool
) -> None:
    written = number.quantize(Decimal(1).scaleb(-places))
    written = written if signed else abs(written)
    unit = Decimal(1).scaleb(-places)
    assume(all(abs(abs(v) - abs(written)) > unit for v in snapshot_numbers(values)))
    result = check(f"The value was {written} today.", {"values": values})
    assert not result.ok
    assert result.unsupported == [str(written)]

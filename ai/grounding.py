"""Grounding check for AI texts: every number the text cites must be in its snapshot, after rounding as written.

A number in the text with d decimals is supported by a snapshot number s when s rounded to d decimals (half-up or
half-even) equals it; `1.2M`, `2.5k`, `12,5 mil` compare s divided by the scale. Nothing is derived: a share of 0.613
in the snapshot does not support "61.3%". Times, dates, list markers and identifiers copied from the snapshot
(`1000PEPEUSDT`) are not numbers; a duration (`15m`, `1 hour`, `5 minutos`) is supported only by the same duration
in the snapshot's strings (keys like "5m" included) or in the user's question.
"""

from __future__ import annotations

import math
import numbers
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any

_SECONDS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds", "seg", "segundo", "segundos"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes", "minuto", "minutos"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours", "hora", "horas"), 3600),
    **dict.fromkeys(("d", "day", "days", "dia", "dias"), 86_400),
    **dict.fromkeys(("w", "wk", "week", "weeks", "semana", "semanas"), 604_800),
}
_SCALES = {
    **dict.fromkeys(("k", "thousand", "mil"), 3),
    **dict.fromkeys(("m", "mn", "mln", "million", "millions", "mi", "milhão", "milhões", "milhao", "milhoes"), 6),
    **dict.fromkeys(("b", "bn", "bln", "billion", "billions", "bi", "bilhão", "bilhões", "bilhao", "bilhoes"), 9),
    **dict.fromkeys(("trillion", "trillions", "trilhão", "trilhões", "trilhao", "trilhoes"), 12),
}
_NOT_LETTER = r"(?![^\W\d_])"
_UNIT_WORDS = "|".join(sorted((u for u in _SECONDS if len(u) > 1), key=len, reverse=True))
_SCALE_WORDS = "|".join(sorted((s for s in _SCALES if len(s) > 2), key=len, reverse=True))

# Rule: a duration is a number with a unit, a letter glued (5m, 24h, 4H, 1D as on charts) or a word (15 minutes).
_UNIT = rf"(?P<unit>[smhdwHD]|[ -]?(?i:{_UNIT_WORDS})){_NOT_LETTER}"
_SUFFIX_AHEAD = r"(?=[ -]?[^\W\d_]| ?%)"  # a quick no before trying the alternatives of units and scales
# The durations a snapshot's strings or a question hold: 5m, 15 minutes, 1 hora, price_change_pct_5m.
_DURATION = re.compile(rf"(?=[0-9])(?<![0-9])(?<![0-9][.,])(?P<body>[0-9]++(?:[.,][0-9]++)?+){_SUFFIX_AHEAD}{_UNIT}")
# Rule: a number is [sign][currency][sign]digits with . and , then one optional suffix: duration unit, scale or %.
# (A sign after a letter or digit is a hyphen, so 10-20 is no -20; a suffix never runs into more letters.)
_NUMBER = re.compile(
    r"(?=[-+\u2212$€£0-9]|US\$|R\$)"  # cheap first-character test: letters cannot start a number
    r"(?:(?<![A-Za-z0-9])(?P<sign>[-+\u2212]))?"
    r"(?:(?P<currency>(?:US|R)?\$|[€£])\s?(?P<sign2>[-+\u2212])?)?"  # $-1.2 as well as -$1.2
    r"(?<![0-9])(?<![0-9][.,])(?P<body>[0-9]++(?:[.,][0-9]++)*+)"  # possessive: never read 1.25m as 1.2 and 5m
    rf"(?:{_SUFFIX_AHEAD}(?:{_UNIT}"
    rf"|(?P<scale>[kKMBb]|bn|mn|mln|bln| ?(?i:{_SCALE_WORDS})){_NOT_LETTER}"  # Rule: 2.5k, 1.2M, 3 mil, 2 bi
    r"| ?%))?"
)
_MONTHS = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec"
    r"|[Jj]aneiro|[Ff]evereiro|[Mm]arço|[Aa]bril|[Mm]aio|[Jj]unho|[Jj]ulho|[Aa]gosto|[Ss]etembro|[Oo]utubro"
    r"|[Nn]ovembro|[Dd]ezembro)"
)
# Rule: list markers at a line start are not numbers; neither are dates, times and time zones that the snapshot or
# the question holds (see _mask_exempt). Both are blanked before numbers are read.
_EXEMPT = re.compile(
    r"^[ \t]*(?:[-*•][ \t]*)?[0-9]{1,2}[.)](?=[ \t])"  # list markers: "1. ", "2) ", "- 3. "
    r"|(?<![0-9])(?<![0-9][.,])(?=[0-9])(?:"  # starting with a digit that is not inside a number:
    r"[0-9]{4}[-/][0-9]{1,2}[-/][0-9]{1,2}"  # 2026-01-01, 2026/01/01
    r"|[0-9]{1,2}/[0-9]{1,2}/(?:[0-9]{4}|[0-9]{2})"  # 01/01/2026, 1/1/26
    r"|[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{4}"  # 01.01.2026
    r"|[0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?"  # 14:05, 14:05:30.250
    r"|[0-9]{1,2}h[0-9]{2}"  # 14h05
    rf"|[0-9]{{1,2}}(?:st|nd|rd|th|º)? (?:de )?{_MONTHS}\b(?:,? (?:de )?[0-9]{{4}}\b)?"  # 1 de maio de 2026
    r"|[0-9]{1,2} ?[AaPp]\.?[Mm]\.?(?![A-Za-z])"  # 2pm, 2 p.m.
    r")(?![0-9])"
    rf"|\b(?=[A-Z])(?:{_MONTHS}\.? [0-9]{{1,2}}(?:st|nd|rd|th)?\b(?:,? [0-9]{{4}}\b)?"  # Jan 1, 2026
    r"|(?:UTC|GMT) ?[-+\u2212] ?[0-9]{1,2}(?::?[0-9]{2})?)",  # UTC-3, GMT+05:30
    re.MULTILINE,
)
_NUMERIC_STRING = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_IDENTIFIER = re.compile(r"(?<![A-Za-z0-9_])(?=[A-Za-z_]*[0-9])[A-Za-z0-9_]+")  # words with a digit
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_LOWER_WORD = re.compile(r"[^\W\d_]+")
# Words that tell Portuguese from English when no number settles how decimals are written.
_PORTUGUESE = frozenset({
    "de", "do", "da", "dos", "das", "em", "no", "na", "nos", "nas", "com", "para", "por", "que", "não", "uma", "um",
    "é", "foi", "está", "houve", "compra", "compras", "venda", "vendas", "preço", "alta", "queda", "subiu", "caiu",
    "últimos", "últimas", "minutos", "horas", "baleia", "baleias", "sinal", "mercado",
})
_ENGLISH = frozenset({
    "the", "of", "and", "in", "on", "with", "for", "to", "is", "was", "are", "were", "buy", "buying", "sell",
    "selling", "price", "rose", "fell", "last", "minutes", "hours", "whale", "whales", "signal", "market",
})


@dataclass(frozen=True)
class GroundingResult:
    """The verdict, the numbers found in the text and those no snapshot number supports, all as written."""

    ok: bool
    numbers: list[str]
    unsupported: list[str]

    def __bool__(self) -> bool:
        """True when every number in the text is supported."""
        return self.ok


def _walk(node: dict[Any, Any] | list[Any] | tuple[Any, ...], found: list[Decimal], strings: list[str]) -> None:
    """Collect, in order, the numbers and the strings (dict keys included) of a dict, list or tuple, nested."""
    for item in [x for pair in node.items() for x in pair] if type(node) is dict else node:
        kind = type(item)  # exact types first: the common case stays fast
        if kind is float:
            if math.isfinite(item):
                found.append(Decimal(repr(item)))  # repr keeps 0.1 as 0.1
        elif kind is str:
            strings.append(item)
            if not item[:1].isalpha() and _NUMERIC_STRING.fullmatch(item.strip()):  # skips most keys fast
                found.append(Decimal(item.strip()))
        elif kind is int:
            found.append(Decimal(item))
        elif kind is dict or kind is list or kind is tuple:
            _walk(item, found, strings)
        elif isinstance(item, Decimal):
            if item.is_finite():
                found.append(item)
        elif kind is bool or item is None:
            continue  # a flag is not a number
        elif isinstance(item, numbers.Integral):  # numpy integers too
            found.append(Decimal(int(item)))
        elif isinstance(item, numbers.Real):  # numpy floats too
            _walk([float(item)], found, strings)
        elif isinstance(item, str):
            _walk([str(item)], found, strings)
        elif isinstance(item, Mapping):
            _walk(dict(item), found, strings)
        elif isinstance(item, Iterable):  # sets and other collections
            _walk(list(item), found, strings)


def snapshot_numbers(snapshot: Any) -> list[Decimal]:
    """Every number in a nested structure: ints, floats (via repr), Decimals and numeric strings, keys included."""
    found: list[Decimal] = []
    _walk([snapshot], found, [])
    return found


def _style_vote(body: str) -> int:
    """+1 if the number is unambiguously written with a decimal comma, -1 with a decimal point, 0 if unknown."""
    seps = [c for c in body if c in ".,"]
    if not seps:
        return 0
    if len(set(seps)) == 2:
        return 1 if seps[-1] == "," else -1  # the last separator is the decimal one: 1.234,56 / 1,234.56
    if len(seps) > 1:
        return -1 if seps[0] == "," else 1  # repeated: thousands groups, 1,234,567 / 1.234.567
    if _ambiguous(body):
        return 0
    return 1 if seps[0] == "," else -1  # a lone separator not followed by a 3-digit group is decimal: 0,42 / 0.42


def _ambiguous(body: str) -> bool:
    """A lone separator followed by exactly 3 digits after a 1-3 digit head not starting with 0 (1,234 / 1.234)."""
    head, _, tail = body.replace(",", ".").partition(".")
    return len(tail) == 3 and 1 <= len(head) <= 3 and not head.startswith("0")


def _decimal_comma(text: str, bodies: list[str]) -> bool:
    """Whether the text writes decimals with a comma: by its unambiguous numbers, else by its words."""
    # Rule: ambiguous numbers follow the text's style: the majority of its unambiguous numbers, else its language.
    votes = sum(_style_vote(body) for body in bodies)
    if votes:
        return votes > 0
    words = _LOWER_WORD.findall(text.lower())
    return sum(w in _PORTUGUESE for w in words) > sum(w in _ENGLISH for w in words)


def _read(body: str, decimal_comma: bool) -> tuple[Decimal, int] | None:
    """The value and written decimal places of digits with separators, or None when malformed (1,2,3)."""
    seps = [c for c in body if c in ".,"]
    if not seps:
        return Decimal(body), 0
    if len(set(seps)) == 2:
        point: str | None = seps[-1]
    elif len(seps) > 1:
        point = None
    elif _ambiguous(body):
        point = seps[0] if (seps[0] == ",") == decimal_comma else None  # Rule: 1,234 is 1234 in English text
    else:
        point = seps[0]
    whole, fraction = body.rsplit(point, 1) if point else (body, "")
    if point and point in whole:
        return None
    groups = whole.split(("," if point == "." else ".") if point else seps[0])
    if len(groups) > 1 and (len(groups[0]) > 3 or any(len(g) != 3 for g in groups[1:])):
        return None  # thousands groups are 1-3 digits then exactly 3 each
    return Decimal("".join(groups) + ("." + fraction if fraction else "")), len(fraction)


def _seconds(unit: str | None, places: int, currency: str | None) -> int:
    """Seconds per unit of a duration, else 0: 1.2m and $5m are millions, a bare integer 5m is five minutes."""
    if not unit or (unit == "m" and (places or currency)):  # Rule: m is minutes only after a bare integer
        return 0
    return _SECONDS[unit.lstrip(" -").lower()]


def _suffix(match: re.Match[str], places: int) -> tuple[int, int]:
    """(seconds per unit if the number is a duration else 0, power of ten of its scale)."""
    seconds = _seconds(match["unit"], places, match["currency"])
    if seconds:
        return seconds, 0
    scale = "m" if match["unit"] else match["scale"]
    return 0, _SCALES[scale.lstrip().lower()] if scale else 0


def _durations(strings: str) -> set[Decimal]:
    """The durations, in seconds, written in the strings."""
    found = set()
    for match in _DURATION.finditer(strings):
        body = match["body"].replace(",", ".")
        seconds = _seconds(match["unit"], len(body.partition(".")[2]), None)
        if seconds:
            found.add(Decimal(body) * seconds)
    return found


class _Index:
    """Snapshot magnitudes sorted once per sign: a look-up bisects to the few within rounding, then checks them."""

    def __init__(self, values: list[Decimal]) -> None:
        self.by_sign = {  # zero has both signs
            "-": sorted(v.copy_abs() for v in values if v.is_signed() or not v),
            "+": sorted(v for v in values if not v.is_signed() or not v),
        }

    def supports(self, value: Decimal, places: int, exponent: int, sign: str) -> bool:
        """Whether some snapshot number, divided by 10**exponent and rounded to `places`, equals the value."""
        target = value.copy_abs()
        half = Decimal(5).scaleb(-places - 1)
        low, high = (target - half).scaleb(exponent), (target + half).scaleb(exponent)
        quantum = Decimal(1).scaleb(-places)
        # Rule: s supports d decimals if s/scale rounds (half-up or half-even) to the value; % is as is, never derived.
        # Rule: an unsigned number may drop the sign ("fell 0.42%" for -0.42); a written sign must agree.
        for magnitudes in [self.by_sign[sign]] if sign else self.by_sign.values():
            for magnitude in magnitudes[bisect_left(magnitudes, low) : bisect_right(magnitudes, high)]:
                scaled = magnitude.scaleb(-exponent)
                if target in (scaled.quantize(quantum, ROUND_HALF_UP), scaled.quantize(quantum, ROUND_HALF_EVEN)):
                    return True
        return False


def _glued_word(text: str, match: re.Match[str]) -> str | None:
    """The word a number is part of when letters or digits touch it (1000PEPEUSDT, 3x), else None."""
    start, end = match.start(), match.end()
    while start and text[start - 1] in _WORD_CHARS:
        start -= 1
    while end < len(text) and text[end] in _WORD_CHARS:
        end += 1
    return text[start:end] if (start, end) != match.span() else None


def _is_identifier(word: str, identifiers: set[str]) -> bool:
    """A word copied from the snapshot, or with 2+ letters the start of one (1000PEPE of 1000PEPEUSDT)."""
    if word in identifiers:
        return True
    return sum(c.isalpha() for c in word) >= 2 and any(i.startswith(word) for i in identifiers)


def _supported(match: re.Match[str], decimal_comma: bool, index: _Index, durations: set[Decimal]) -> bool:
    """Whether one number of the text is supported: a duration by the durations, anything else by the index."""
    read = _read(match["body"], decimal_comma)
    if read is None:
        return False
    value, places = read
    seconds, exponent = _suffix(match, places)
    if seconds:  # Rule: a duration needs the same duration (in seconds) in the snapshot's strings or the question
        return value * seconds in durations
    sign = (match["sign"] or match["sign2"] or "").replace("\u2212", "-")
    try:
        return index.supports(value, places, exponent, sign)
    except InvalidOperation:  # more digits than the context holds: no snapshot number rounds to it
        return False


_LIST_MARKER = re.compile(r"[ \t]*(?:[-*•][ \t]*)?[0-9]{1,2}[.)]")
_DIGITS = re.compile(r"[0-9]+")


def _mask_exempt(text: str, context: str) -> str:
    """Blank list markers, and the times and dates whose digit groups all appear in the snapshot or question."""
    known = {int(group) for group in _DIGITS.findall(context)}

    def blank(match: re.Match[str]) -> str:
        written = match.group()
        if _LIST_MARKER.fullmatch(written) or all(int(g) in known for g in _DIGITS.findall(written)):
            return " " * len(written)
        return written  # Rule: a time or date the data does not hold is read as numbers, and must be supported

    return _EXEMPT.sub(blank, text)


def check_grounding(text: str, snapshot: Any, question: str = "") -> GroundingResult:
    """Check that every number in `text` is supported by `snapshot`; durations also by `question`."""
    values: list[Decimal] = []
    found_strings: list[str] = []
    _walk([snapshot], values, found_strings)
    strings = "\n".join(found_strings)  # searched at once; a line break ends any number or word
    masked = _mask_exempt(text, f"{strings}\n{question}")
    found = list(_NUMBER.finditer(masked))
    if not found:
        return GroundingResult(True, [], [])  # Rule: no numbers is grounded; the caller judges if that will do
    glued = [_glued_word(masked, m) for m in found]
    identifiers = set(_IDENTIFIER.findall(strings)) if any(glued) else set()
    # Rule: a number inside an identifier from the snapshot is no number; one merely touching letters (3x) is.
    matches = [m for m, word in zip(found, glued, strict=True) if not (word and _is_identifier(word, identifiers))]
    decimal_comma = _decimal_comma(masked, [m["body"] for m in matches])
    index = _Index(values)
    durations = _durations(f"{strings}\n{question}") if any(m["unit"] for m in matches) else set()
    written = [m.group().strip() for m in matches]
    with localcontext() as context:
        context.prec = 60
        supported = [_supported(m, decimal_comma, index, durations) for m in matches]
    return GroundingResult(all(supported), written, [w for w, ok in zip(written, supported, strict=True) if not ok])

"""The one-line rule language: `SYMBOL METRIC [SPAN] OP VALUE`, e.g. `btc price crosses 95k`,
`ETHUSDT delta 5m < -500`, `SOL buy_share 5m > 80%`, `BTC volume 1m > 3x`; and the plain-English phrasings
it can read without a model ("tell me when BTC's CVD turns negative"). Parsing never raises: a text is a
RuleSpec or a RuleError saying which part was not understood."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from bot.rules.metrics import METRICS, SPANS_MS, Op, measure_key
from presentation.symbols import resolve_symbol

MULTIPLIERS = {"k": Decimal(10**3), "m": Decimal(10**6), "b": Decimal(10**9)}
OPS = {">": Op.ABOVE, ">=": Op.ABOVE, "above": Op.ABOVE, "over": Op.ABOVE, "<": Op.BELOW, "<=": Op.BELOW,
       "below": Op.BELOW, "under": Op.BELOW, "crosses": Op.CROSSES, "cross": Op.CROSSES, "x": Op.CROSSES}
METRIC_WORDS = {"buyshare": "buy_share", "buy-share": "buy_share", "buy": "buy_share", "liq": "liquidations",
                "liqs": "liquidations", "liquidation": "liquidations", "whales": "whale", "vol": "volume",
                "open_interest": "oi", "funding_rate": "funding"}
TOKEN = re.compile(r">=|<=|[<>]|[^\s<>]+")
NUMBER = re.compile(r"^([+-]?)\$?(\d[\d,_]*(?:\.\d+)?|\.\d+)([kmb]?)(%|x)?$", re.IGNORECASE)
MAX_DECIMALS = 8


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A rule as understood: the symbol, what is measured, the comparison and the threshold."""

    symbol: str
    metric: str
    span: str | None
    op: Op
    threshold: Decimal
    suffix: str = ""  # "" | "%" | "x"

    @property
    def measure(self) -> str:
        return measure_key(self.metric, self.span, self.suffix)

    @property
    def text(self) -> str:
        """The rule as /alert takes it, with the full symbol."""
        span = f" {self.span}" if self.span else ""
        return f"{self.symbol} {self.metric}{span} {self.op} {_number(self.threshold)}{self.suffix}"


@dataclass(frozen=True)
class RuleError:
    """Why a text is not a rule: the part that was not understood and a message key saying what was expected."""

    part: str
    reason: str  # a message key of bot/rules/messages.py


def _number(value: Decimal) -> str:
    return format(value.normalize(), "f")


def parse_number(text: str) -> tuple[Decimal, str] | None:
    """A threshold: `100000`, `95k`, `1.5M`, `-500`, `80%`, `3x`, `$1,000`; (value, suffix) or None."""
    match = NUMBER.match(text.strip())
    if match is None:
        return None
    sign, digits, multiplier, suffix = match.groups()
    try:
        value = Decimal(digits.replace(",", "").replace("_", ""))
    except InvalidOperation:
        return None
    value *= MULTIPLIERS.get(multiplier.lower(), Decimal(1))
    if sign == "-":
        value = -value
    if value != value.quantize(Decimal(1).scaleb(-MAX_DECIMALS)):  # finer than 1e-8: no price or amount is
        return None
    return value, (suffix or "").lower()


def parse_rule(text: str, symbols: list[str]) -> RuleSpec | RuleError:
    """`SYMBOL METRIC [SPAN] OP VALUE`, or the English phrasing this grammar knows."""
    words = TOKEN.findall(text.strip())
    if not words:
        return RuleError("", "rule.empty")
    plain = _plain_english(text, symbols)
    if plain is not None:
        return plain
    symbol = resolve_symbol(words[0].removesuffix("'s"), symbols)
    if symbol is None:
        return RuleError(words[0], "rule.bad_symbol")
    if len(words) < 2:
        return RuleError(text.strip(), "rule.no_metric")
    metric_word = words[1].lower()
    name = METRIC_WORDS.get(metric_word, metric_word)
    metric = METRICS.get(name)
    if metric is None:
        return RuleError(words[1], "rule.bad_metric")
    rest = words[2:]
    span = None
    if rest and rest[0].lower() in SPANS_MS:
        span = rest[0].lower()
        rest = rest[1:]
    elif rest and rest[0].lower() not in OPS and len(rest) > 2:
        return RuleError(rest[0], "rule.bad_span")
    if not rest:
        return RuleError(" ".join(words[:2 + (span is not None)]), "rule.no_condition")
    op = OPS.get(rest[0].lower())
    if op is None:
        return RuleError(rest[0], "rule.bad_op")
    if len(rest) != 2:
        return RuleError(" ".join(rest), "rule.one_value" if len(rest) > 2 else "rule.no_value")
    number = parse_number(rest[1])
    if number is None:
        return RuleError(rest[1], "rule.bad_value")
    return _checked(RuleSpec(symbol, name, span, op, *number), rest[1])


def _checked(spec: RuleSpec, value_text: str) -> RuleSpec | RuleError:
    """The spec if its metric takes this span, comparison and kind of threshold."""
    metric = METRICS[spec.metric]
    if spec.span is not None and metric.span == "never":
        return RuleError(spec.span, "rule.no_span_here")
    if spec.op not in metric.ops:
        return RuleError(str(spec.op), "rule.op_not_here")
    if spec.suffix not in metric.suffixes:
        return RuleError(value_text, "rule.suffix_not_here")
    if spec.metric == "oi" and (spec.suffix == "%") != (spec.span is not None):
        return RuleError(value_text, "rule.oi_change")
    if spec.metric == "buy_share" and not 0 <= spec.threshold <= 100:
        return RuleError(value_text, "rule.percent_range")
    if spec.metric in ("price", "whale", "volume", "liquidations") and spec.threshold <= 0:
        return RuleError(value_text, "rule.positive")
    if spec.span is None and metric.default_span is not None:
        return RuleSpec(spec.symbol, spec.metric, metric.default_span, spec.op, spec.threshold, spec.suffix)
    return spec


# -- plain English --------------------------------------------------------------------------------------------

LEAD = re.compile(r"^(?:please\s+)?(?:(?:tell|alert|notify|ping|warn)\s+me|let\s+me\s+know)\s+(?:when|if)\s+",
                  re.IGNORECASE)
PHRASES: tuple[tuple[re.Pattern[str], Op, str | None], ...] = (
    (re.compile(r"\b(?:turns?|goes|becomes?|gets?|flips?)\s+negative\b"), Op.BELOW, "0"),
    (re.compile(r"\b(?:turns?|goes|becomes?|gets?|flips?)\s+positive\b"), Op.ABOVE, "0"),
    (re.compile(r"\b(?:is|goes|rises|gets|climbs|jumps|moves)?\s*(?:above|over|higher than|more than|exceeds)\s+"
                r"(\S+)"), Op.ABOVE, None),
    (re.compile(r"\b(?:is|goes|falls|drops|gets|sinks|moves)?\s*(?:below|under|lower than|less than)\s+(\S+)"),
     Op.BELOW, None),
    (re.compile(r"\b(?:crosses|breaks|hits|reaches|touches)\s+(\S+)"), Op.CROSSES, None),
)
METRIC_PHRASES = (("buy share", "buy_share"), ("open interest", "oi"), ("funding", "funding"), ("cvd", "cvd"),
                  ("delta", "delta"), ("volume", "volume"), ("liquidation", "liquidations"), ("whale", "whale"),
                  ("price", "price"))
SPAN_PHRASES = (("in the last hour", "1h"), ("last hour", "1h"), ("in an hour", "1h"), ("today", "1d"),
                ("over a day", "1d"), ("24h", "1d"))
PLAIN_DEFAULT_SPANS = {"cvd": "1d", "delta": "5m"}


def _plain_english(text: str, symbols: list[str]) -> RuleSpec | RuleError | None:
    """The rule an English request means ("tell me when BTC's CVD turns negative"), or None when the text is
    not such a request (then it is read as the terse grammar)."""
    lead = LEAD.match(text.strip())
    if lead is None:
        return None
    sentence = text.strip()[lead.end():].lower().rstrip(".!?")
    symbol = None
    for word in re.findall(r"[\w$#]+(?:'s)?", sentence):
        symbol = resolve_symbol(word.removesuffix("'s"), symbols)
        if symbol is not None:
            break
    if symbol is None:
        return RuleError(sentence, "rule.bad_symbol")
    metric = next((name for phrase, name in METRIC_PHRASES if phrase in sentence), "price")
    span = next((s for s in SPANS_MS if re.search(rf"\b{s}\b", sentence)), None)
    span = span or next((s for phrase, s in SPAN_PHRASES if phrase in sentence), None)
    if span is None and METRICS[metric].span != "never":
        span = PLAIN_DEFAULT_SPANS.get(metric)
    for pattern, op, fixed in PHRASES:
        found = pattern.search(sentence)
        if found is None:
            continue
        value_text = fixed if fixed is not None else found.group(1)
        number = parse_number(value_text)
        if number is None:
            return RuleError(value_text, "rule.bad_value")
        return _checked(RuleSpec(symbol, metric, span, op, *number), value_text)
    return RuleError(sentence, "rule.no_condition")

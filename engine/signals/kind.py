"""What a signal kind is: its rule (window by window, with an optional pre-filter for batches), wording and docs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from core.events import Direction, SignalKind
from core.features import WindowFeatures
from engine.signals.flows import Flows
from engine.signals.span_sums import SpanSums
from engine.signals.thresholds import SignalThresholds


@dataclass(frozen=True, slots=True)
class Finding:
    """What a rule found before cooldown and packaging: direction, severity and the kind's own evidence."""

    direction: Direction
    severity: int
    evidence: Mapping[str, Any]  # the kind's evidence TypedDict, in the order it is stored and printed


Rule = Callable[[WindowFeatures, Flows, SignalThresholds], Finding | None]
# Per window of a batch (history + batch): True where the rule could fire. `margin` widens the net (> 0) or
# narrows it to windows where the rule surely fires (< 0); a mask independent of `margin` is the rule itself.
PreFilter = Callable[[SpanSums, SignalThresholds, float], np.ndarray]


class FactFormat(Protocol):
    """How the reader's side formats the numbers of a fact line (the bots implement it)."""

    def number(self, value: Any, places: int = 2) -> str:
        """A readable number."""
        ...

    def percent(self, ratio: Any) -> str:
        """A 0..1 ratio as a percent number."""
        ...

    def side(self, word: str) -> str:
        """"buyers" or "sellers" in the reader's language."""
        ...


FactValues = Callable[[Mapping[str, Any], Direction, FactFormat], dict[str, Any]]
OfflineDetail = Callable[[Mapping[str, Any], Callable[[Any], str]], str | None]


@dataclass(frozen=True, slots=True)
class Wording:
    """A kind's words in one language: its alert title, a str.format template over its fact values, and by
    direction the move the signal implies (said in the alert)."""

    title: str
    fact: str
    meaning: Mapping[str, str] = field(default_factory=dict)  # "buy"/"sell"/"neutral" -> e.g. "..., bullish"


@dataclass(frozen=True)
class KindSpec:
    """Everything about one signal kind; each module of engine.signals.kinds defines one as KIND."""

    name: SignalKind
    order: int  # a window's signals come out in this order (and /help, the dashboard list kinds in it)
    doc: str  # one line: what the kind means
    rule: Rule  # the one rule, judged window by window and on the candidates of a batch
    wording: Mapping[str, Wording]  # by language; "en" is required (the fallback)
    facts: FactValues  # the values the wording's fact template names, from the signal's evidence
    offline: str  # the offline explainer's phrase for the kind
    offline_detail: OfflineDetail | None = None  # an extra sentence from the evidence (numbers formatted by the AI)
    spans: tuple[str, ...] = ()  # the context spans the rule reads
    thresholds: tuple[str, ...] = ()  # the SignalThresholds fields the rule compares against
    pre_filter: PreFilter | None = None  # None: every window of a batch is judged by the rule

    def words(self, language: str) -> Wording:
        """The wording in `language`, English when that language has none."""
        return self.wording.get(language) or self.wording["en"]

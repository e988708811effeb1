"""Signal detection window by window: every kind's rule over a closed window, then a per (symbol, kind) cooldown."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from core.events import Signal, SignalKind
from core.features import WindowFeatures
from engine.analysis.context import SymbolContext
from engine.signals import registry
from engine.signals.amounts import price
from engine.signals.flows import flows_at
from engine.signals.kind import Finding
from engine.signals.thresholds import SignalThresholds

DAY_MS = 86_400_000


class SignalDetector:
    """Runs every registered kind on each closed window, with a per (symbol, kind) cooldown in data time."""

    def __init__(self, thresholds: SignalThresholds, clock: Callable[[], float] = time.time) -> None:
        self.thresholds = thresholds
        self.clock = clock
        self.cooldown_ms = int(thresholds.cooldown_s * 1000)
        self.last_emitted: dict[tuple[str, str], int] = {}  # (symbol, kind) -> window_end of the last signal
        self.suppressed: Counter[tuple[str, str]] = Counter()
        # The alert budget: a symbol signals at most once per spacing_ms of data time, whatever the kind.
        self.spacing_ms = int(DAY_MS / thresholds.budget_per_day) if thresholds.budget_per_day > 0 else 0
        self.last_by_symbol: dict[str, int] = {}  # symbol -> window_end of its last signal
        self.over_budget: Counter[str] = Counter()

    def detect(self, features: WindowFeatures, context: SymbolContext) -> list[Signal]:
        """The signals of a window, in kind order, after cooldown; call after `context.add(features)`."""
        flows = flows_at(features, context)
        signals = []
        for spec in registry.all_kinds():
            finding = spec.rule(features, flows, self.thresholds)
            if finding is not None and self.cooled_down(features, spec.name):
                signals.append(self.signal(features, spec.name, finding))
        return self.within_budget(signals)

    def within_budget(self, signals: list[Signal]) -> list[Signal]:
        """The signals (in order) the symbol's budget allows: one per spacing_ms of data time; the rest are counted
        and dropped (a held-back signal still restarts its kind's cooldown: the condition was already seen)."""
        return [signal for signal in signals if self.allowed(signal.symbol, [signal.window_end])[0]]

    def allowed(self, symbol: str, window_ends: list[int]) -> list[bool]:
        """`within_budget` for signals not made yet: which of the symbol's signals ending at `window_ends` (in
        order) the budget lets through; the others are counted as over budget."""
        if not self.spacing_ms:
            return [True] * len(window_ends)
        allowed = []
        last = self.last_by_symbol.get(symbol)
        for end in window_ends:
            if last is not None and end - last < self.spacing_ms:
                self.over_budget[symbol] += 1
                allowed.append(False)
                continue
            last = self.last_by_symbol[symbol] = end
            allowed.append(True)
        return allowed

    def rejudge(self, features: WindowFeatures, context: SymbolContext) -> list[Signal]:
        """A corrected window judged again as of its own end: the signals it now warrants, marked late (evidence
        "late": true). The cooldown is neither asked nor moved (the moment is past, and later signals must not be
        held back by it); a signal the window had already raised keeps its id, so it is not raised twice."""
        flows = flows_at(features, context)
        signals = []
        for spec in registry.all_kinds():
            finding = spec.rule(features, flows, self.thresholds)
            if finding is not None:
                signal = self.signal(features, spec.name, finding)
                signal.evidence["late"] = True
                signals.append(signal)
        return signals

    def cooled_down(self, features: WindowFeatures, kind: str) -> bool:
        """Record an emission and answer True, unless the last one was < cooldown_s of data time ago (counted)."""
        key = (features.symbol, kind)
        last = self.last_emitted.get(key)
        if last is not None and features.window_end - last < self.cooldown_ms:
            self.suppressed[key] += 1
            return False
        self.last_emitted[key] = features.window_end
        return True

    def signal(self, w: WindowFeatures, kind: SignalKind, finding: Finding) -> Signal:
        """The Signal event of a finding, with the window's close, delta and cvd added to its evidence (when the
        window had trades: a window of futures data alone has no price of its own)."""
        evidence = dict(finding.evidence)
        if w.trade_count:
            evidence |= {"close": price(w.close), "delta": price(w.delta), "cvd": price(w.cvd)}
        return Signal(
            id=f"{w.symbol}-{kind}-{w.window_start}",
            symbol=w.symbol,
            kind=kind,
            direction=finding.direction,
            severity=finding.severity,
            window_start=w.window_start,
            window_end=w.window_end,
            evidence=evidence,
            created_at=self.clock(),
        )

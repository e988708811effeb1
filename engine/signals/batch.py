"""Signals for a batch of closed windows, judging with the exact rule only the windows a kind could flag.

Each kind may give a pre-filter over the batch's columns (running sums of the 1m, 5m and 1h spans ending at
each window) with a safety margin, so that it keeps every window its exact rule could accept; a kind without
one has every window judged. Each candidate is then judged by the kind's one rule, as window by window, with
its span summaries computed exactly (prefix sums of the integer amounts) and only when the rule asks for them.
Windows nothing could flag are skipped, which changes nothing: the cooldown only moves when a signal is emitted.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np

from core.events import Signal
from core.features import WindowFeatures
from engine.analysis.context import CONTEXT_SPANS, FlowSummary
from engine.analysis.window_batch import WindowBatch
from engine.signals import registry
from engine.signals.detector import SignalDetector
from engine.signals.flows import Flows
from engine.signals.kind import Finding, KindSpec
from engine.signals.span_sums import SpanSums

MARGIN = 1e-9  # far above float64's error on these ratios, far below any threshold's meaning


class _Lazy:
    """The batch's windows as objects and their flows, each made on first use (index into history + batch)."""

    def __init__(self, sums: SpanSums) -> None:
        self.sums = sums
        self._windows: dict[int, WindowFeatures] = {}
        self._summaries: dict[str, dict[int, FlowSummary | None]] = {span: {} for span in CONTEXT_SPANS}

    def load(self, rows: list[int]) -> None:
        """Make the objects of these windows in one go."""
        rows = [i for i in rows if i not in self._windows]
        self._windows |= zip(rows, self.sums.windows.features(np.array(rows, dtype=np.int64)), strict=True)

    def load_summaries(self, rows: list[int], span: str) -> None:
        """Summarise the span ending at each of these windows in one go."""
        self._summaries[span] |= self.sums.summaries([i for i in rows if i not in self._summaries[span]], span)

    def window(self, i: int) -> WindowFeatures:
        if i not in self._windows:
            self.load([i])
        return self._windows[i]

    def flows(self, i: int) -> Flows:
        """Window i's flows (not kept here: a Flows that refers back to this would be a cycle, freed only by gc)."""
        return Flows(functools.partial(self._summary, i))

    def _summary(self, i: int, span: str) -> FlowSummary | None:
        if i not in self._summaries[span]:
            self.load_summaries([i], span)
        return self._summaries[span][i]


class BatchJudge:
    """Runs a SignalDetector over a batch of one symbol's windows that follow its history (the last hour)."""

    def __init__(self, detector: SignalDetector) -> None:
        self.detector = detector

    def signals(self, windows: WindowBatch, first: int) -> list[Signal]:
        """The signals of windows[first:] (a batch), judged in order; windows[:first] is the symbol's last hour before.

        Each kind has its own cooldown, so each is walked alone; a window is made an object only where a signal
        is emitted (within the budget) or where its rule is too close to call without the exact judgement."""
        if first >= len(windows):
            return []
        kinds = registry.all_kinds()
        sums = SpanSums(windows)
        lazy = _Lazy(sums)
        ends = windows.window_end.tolist()
        fired = sorted(
            (i, order, finding) for order, spec in enumerate(kinds)
            for i, finding in self._fired(spec, *self._candidates(spec, sums, first), ends, lazy)
        )  # past their cooldowns; then the symbol's budget, before any is made a Signal (most are over it)
        allowed = self.detector.allowed(windows.symbol, [ends[i] for i, _, _ in fired])
        fired = [one for one, ok in zip(fired, allowed, strict=True) if ok]
        lazy.load(sorted({i for i, _, _ in fired}))
        for span in CONTEXT_SPANS:
            lazy.load_summaries([i for i, order, _ in fired if span in kinds[order].spans], span)
        out = []
        for i, order, known in fired:
            window, spec = lazy.window(i), kinds[order]
            finding = known or spec.rule(window, lazy.flows(i), self.detector.thresholds)
            if finding is None:
                raise RuntimeError(f"{window.symbol} {spec.name} at {window.window_start}: a sure window did not fire")
            out.append(self.detector.signal(window, spec.name, finding))
        return out

    def _fired(
        self, spec: KindSpec, maybe: list[int], surely: set[int], ends: list[int], lazy: _Lazy
    ) -> Iterator[tuple[int, Finding | None]]:
        """The windows where the kind emits after its cooldown, with the finding where it had to be judged already."""
        detector = self.detector
        key = (lazy.sums.windows.symbol, spec.name)
        last = detector.last_emitted.get(key)
        for i in maybe:
            finding = None
            if i not in surely:
                finding = spec.rule(lazy.window(i), lazy.flows(i), detector.thresholds)
                if finding is None:
                    continue
            if last is not None and ends[i] - last < detector.cooldown_ms:
                detector.suppressed[key] += 1
                continue
            last = ends[i]
            detector.last_emitted[key] = last
            yield i, finding

    def _candidates(self, spec: KindSpec, sums: SpanSums, first: int) -> tuple[list[int], set[int]]:
        """The batch windows (indexes into history + batch, in order) whose rule could fire, and those whose rule
        surely fires (clear of the margin)."""
        if spec.pre_filter is None:
            return list(range(first, len(sums.windows))), set()
        batch = np.arange(len(sums.windows)) >= first
        t = self.detector.thresholds
        maybe = spec.pre_filter(sums, t, MARGIN) & batch  # a wider net, then a safely narrower one
        surely = spec.pre_filter(sums, t, -MARGIN) & batch
        return np.flatnonzero(maybe).tolist(), set(np.flatnonzero(surely).tolist())

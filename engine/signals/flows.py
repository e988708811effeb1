"""The span summaries a window is judged against, made only when a kind asks for them."""

from __future__ import annotations

from collections.abc import Callable

from core.features import WindowFeatures
from engine.analysis.context import CONTEXT_SPANS, FlowSummary, SymbolContext, summarize


class Flows:
    """The summaries a window is judged against, each ending at that window's end (None without data).

    Each is computed on first use: most windows are judged by kinds that need none of them."""

    def __init__(self, summary: Callable[[str], FlowSummary | None]) -> None:
        self._summary = summary
        self._known: dict[str, FlowSummary | None] = {}

    def span(self, name: str) -> FlowSummary | None:
        """The summary of the span `name` (a CONTEXT_SPANS key)."""
        if name not in self._known:
            self._known[name] = self._summary(name)
        return self._known[name]

    @property
    def minute(self) -> FlowSummary | None:
        return self.span("1m")

    @property
    def five(self) -> FlowSummary | None:
        return self.span("5m")

    @property
    def hour(self) -> FlowSummary | None:
        return self.span("1h")


def flows_at(features: WindowFeatures, context: SymbolContext) -> Flows:
    """The spans ending at this window's end (so a corrected older window is judged as of then)."""
    end = features.window_end

    def span(name: str) -> FlowSummary | None:
        if context.latest is not None and context.latest.window_end == end:
            return context.summary(name)  # the usual case: running sums, no re-summing
        return summarize(context.symbol, name, end - CONTEXT_SPANS[name], end, context.windows)

    return Flows(span)

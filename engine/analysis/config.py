"""What the analysis pipeline is configured with, built by the composition root."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.analysis.windows import FlowRules
from engine.signals.thresholds import SignalThresholds


@dataclass(frozen=True)
class PipelineConfig:
    """Window rules (one set, some symbols overridden), how late a window may close, and signal thresholds."""

    rules: FlowRules
    window_grace_ms: int
    thresholds: SignalThresholds
    rules_by_symbol: Mapping[str, FlowRules] = field(default_factory=dict)

    def rules_for(self, symbol: str) -> FlowRules:
        return self.rules_by_symbol.get(symbol, self.rules)

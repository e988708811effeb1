"""Which replayed signals share one alert message, computed in the tests from the merge rule alone."""

from __future__ import annotations

from core.events import Signal


def merge_groups(signals: list[Signal], merge_s: float) -> list[list[Signal]]:
    """The signals of each alert message: those that start within `merge_s` of the message's first one."""
    groups: list[list[Signal]] = []
    for signal in sorted(signals, key=lambda s: (s.window_start, s.id)):
        if groups and signal.window_start < groups[-1][0].window_start + merge_s * 1000:
            groups[-1].append(signal)
        else:
            groups.append([signal])
    return groups

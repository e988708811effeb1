"""The rules of one symbol and measure as sorted thresholds: an observation finds the rules it fires by
bisecting the range of values it passed through, never by looking at every rule.

`>` L fires when the value goes from at most L to above it, `<` L from at least L to below it, `crosses` L on
a crossing either way; a rule just created fires on its first observation if its condition already holds."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any

from bot.rules.metrics import Op

Level = Any  # int (scaled trade amounts) or Decimal (window metrics): one type per book


@dataclass
class Sorted:
    """Levels in order with the rule ids beside them."""

    levels: list[Level] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)

    def add(self, level: Level, rule_id: int) -> None:
        index = bisect_right(self.levels, level)
        self.levels.insert(index, level)
        self.ids.insert(index, rule_id)

    def remove(self, level: Level, rule_id: int) -> bool:
        index = bisect_left(self.levels, level)
        while index < len(self.levels) and self.levels[index] == level:
            if self.ids[index] == rule_id:
                del self.levels[index], self.ids[index]
                return True
            index += 1
        return False

    def between(self, low: int, high: int) -> list[int]:
        return self.ids[low:high] if low < high else []


class ThresholdBook:
    """Every rule on one measure of one symbol, and the measure's last value."""

    def __init__(self, *, event: bool = False) -> None:
        self.event = event  # each observation stands alone (a whale trade): `>` fires whenever it holds
        self.by_op: dict[Op, Sorted] = {op: Sorted() for op in Op}
        self.fresh: dict[int, tuple[Op, Level]] = {}  # created, not judged yet
        self.last: Level | None = None
        self.before_last: Level | None = None  # the value the last observation started from (for its revision)
        self.count = 0

    def add(self, rule_id: int, op: Op, level: Level, *, fresh: bool = True) -> bool:
        """Add a rule; True when its condition already holds on the last value (it fires at once)."""
        self.by_op[op].add(level, rule_id)
        self.count += 1
        if self.event:
            return False
        if self.last is None:
            if fresh and op is not Op.CROSSES:
                self.fresh[rule_id] = (op, level)
            return False
        return (op is Op.ABOVE and self.last > level) or (op is Op.BELOW and self.last < level)

    def remove(self, rule_id: int, op: Op, level: Level) -> None:
        if self.by_op[op].remove(level, rule_id):
            self.count -= 1
        self.fresh.pop(rule_id, None)

    def observe_value(self, value: Level, *, revise: bool = False) -> list[tuple[int, Op]]:
        """`observe` of a single value (a window measure): the path from the last value is a straight line, so
        each direction needs two bisections of two of the three lists."""
        if self.event or self.fresh or self.last is None or revise:
            return self.observe(value, value, value, revise=revise)
        prev = self.last
        self.before_last = prev
        self.last = value
        if value == prev:
            return []
        fired: list[tuple[int, Op]] = []
        crosses = self.by_op[Op.CROSSES]
        if value > prev:
            above = self.by_op[Op.ABOVE]
            if above.ids:
                a = above.levels
                fired += [(rule, Op.ABOVE) for rule in above.between(bisect_left(a, prev), bisect_left(a, value))]
            if crosses.ids:
                c = crosses.levels
                fired += [(rule, Op.CROSSES) for rule in crosses.between(bisect_right(c, prev), bisect_right(c, value))]
        else:
            below = self.by_op[Op.BELOW]
            if below.ids:
                b = below.levels
                fired += [(rule, Op.BELOW) for rule in below.between(bisect_right(b, value), bisect_right(b, prev))]
            if crosses.ids:
                c = crosses.levels
                fired += [(rule, Op.CROSSES) for rule in crosses.between(bisect_left(c, value), bisect_left(c, prev))]
        return fired

    def observe(self, low: Level, high: Level, last: Level, *, revise: bool = False) -> list[tuple[int, Op]]:
        """Rules fired by values that went from the last value through [low, high] to `last` (a window: one
        value); `revise` judges a corrected last observation again from the value before it."""
        if revise:
            self.last = self.before_last
        prev = self.last
        self.before_last, self.last = prev, last
        if self.event:
            above = self.by_op[Op.ABOVE]
            return [(rule, Op.ABOVE) for rule in above.ids[:bisect_right(above.levels, high)]]
        fired: list[tuple[int, Op]] = []
        if prev is not None:
            above, below, crosses = self.by_op[Op.ABOVE], self.by_op[Op.BELOW], self.by_op[Op.CROSSES]
            if above.ids:
                a = above.levels
                ids = above.between(bisect_left(a, prev), bisect_left(a, high))
                if low < prev:  # dipped to or under levels below where it started, and came back above them
                    ids += above.between(bisect_left(a, low), bisect_left(a, min(prev, last)))
                fired += [(rule, Op.ABOVE) for rule in ids]
            if below.ids:
                b = below.levels
                ids = below.between(bisect_right(b, low), bisect_right(b, prev))
                if high > prev:
                    ids += below.between(bisect_right(b, max(prev, last)), bisect_right(b, high))
                fired += [(rule, Op.BELOW) for rule in ids]
            if crosses.ids:
                c = crosses.levels
                ids = crosses.between(bisect_right(c, prev), bisect_right(c, high))
                ids += crosses.between(bisect_left(c, low), bisect_left(c, prev))
                fired += [(rule, Op.CROSSES) for rule in ids]
        if self.fresh:
            known = {rule for rule, _ in fired}
            for rule, (op, level) in self.fresh.items():
                holds = high > level if op is Op.ABOVE else low < level
                if holds and rule not in known:
                    fired.append((rule, op))
            self.fresh.clear()
        return fired



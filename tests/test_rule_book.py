"""The sorted book of thresholds fires exactly the rules a rule-by-rule reading of the semantics fires."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.rules.book import ThresholdBook
from bot.rules.metrics import Op

levels = st.integers(-20, 20).map(Decimal)
rules = st.lists(st.tuples(st.sampled_from(list(Op)), levels), min_size=1, max_size=30)
paths = st.lists(levels, min_size=1, max_size=40)


def fires(op: Op, level: Decimal, prev: Decimal, value: Decimal) -> bool:
    """One rule, one step, as /help alert states it."""
    if op is Op.ABOVE:
        return prev <= level < value
    if op is Op.BELOW:
        return prev >= level > value
    return prev < level <= value or prev > level >= value


@settings(max_examples=300, deadline=None)
@given(rules, paths)
def test_window_values_fire_the_rules_the_semantics_say(specs: list[tuple[Op, Decimal]], path: list[Decimal]) -> None:
    book = ThresholdBook()
    for rule_id, (op, level) in enumerate(specs):
        book.add(rule_id, op, level, fresh=False)
    for i, value in enumerate(path):
        got = sorted(rule for rule, _ in book.observe_value(value))
        expected = [] if i == 0 else [rule for rule, (op, level) in enumerate(specs)
                                      if fires(op, level, path[i - 1], value)]
        assert got == expected, (i, path[: i + 1])


@settings(max_examples=300, deadline=None)
@given(rules, paths)
def test_a_single_value_fires_the_same_as_a_range_of_one_value(specs: list[tuple[Op, Decimal]],
                                                              path: list[Decimal]) -> None:
    straight, ranged = ThresholdBook(), ThresholdBook()
    for rule_id, (op, level) in enumerate(specs):
        straight.add(rule_id, op, level, fresh=False)
        ranged.add(rule_id, op, level, fresh=False)
    for value in path:
        assert sorted(straight.observe_value(value)) == sorted(ranged.observe(value, value, value))

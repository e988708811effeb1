"""Horizons as written on the command line: 30s, 1m, 15m, 1h, 1d."""

from __future__ import annotations

import re

_HORIZON = re.compile(r"(\d+)([smhd])")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_horizons(text: str) -> dict[str, int]:
    """"1m,5m,15m,1h" -> {"1m": 60000, ...} in the order given; ValueError on anything else."""
    horizons: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        match = _HORIZON.fullmatch(part)
        if match is None or int(match[1]) == 0:
            raise ValueError(f"not a horizon: {part!r} (e.g. 30s, 1m, 15m, 1h, 1d)")
        horizons[part] = int(match[1]) * _UNIT_MS[match[2]]
    return horizons

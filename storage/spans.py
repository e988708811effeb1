"""The spans a flow summary or chart covers, by name (light: the command line's choices import it)."""

FLOW_SPANS_MS: dict[str, int] = {"5m": 300_000, "15m": 900_000, "1h": 3_600_000, "4h": 14_400_000, "24h": 86_400_000}

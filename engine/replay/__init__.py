"""Replay: feeding recorded Binance trades through the analysis pipeline."""

from engine.replay.readers import (
    ReplayBatch,
    ReplayInputError,
    RowProblem,
    detect_format,
    read_replay,
    symbol_from_filename,
)

__all__ = ["ReplayBatch", "ReplayInputError", "RowProblem", "detect_format", "read_replay", "symbol_from_filename"]

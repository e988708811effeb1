"""Replay: feeding recorded Binance trades through the analysis pipeline."""

from engine.replay.batches import ReplayBatch, ReplayInputError, RowProblem, SymbolNotNamedError
from engine.replay.readers import detect_format, read_replay, symbol_from_filename

__all__ = [
    "ReplayBatch", "ReplayInputError", "RowProblem", "SymbolNotNamedError", "detect_format", "read_replay",
    "symbol_from_filename",
]

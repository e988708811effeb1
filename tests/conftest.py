"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import hypothesis  # noqa: F401  (imported first: avoids pytest+hypothesis AST recursion crash on 3.11.7)
import pytest

from fakes.recordings import shared_data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real Binance recordings; tests that need it skip where it is absent."""
    folder = shared_data_dir()
    if folder is None:
        pytest.skip("real Binance recordings not found: ../shared/data (or $FLOWBOT_SHARED_DATA) is absent")
    return folder

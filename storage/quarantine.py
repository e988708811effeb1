"""Torn or corrupt feature files (a crash mid-write on a filesystem without atomic rename, a disk error, a stray
`echo garbage >`) are moved aside into DATA_DIR/features/_quarantine, logged and counted, so that every other
file is still read. pyarrow datasets (and so pandas and the store's readers) skip folders starting with `_`."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

QUARANTINE = "_quarantine"

log = logging.getLogger(__name__)
_lock = threading.Lock()
_moved = 0


def quarantined_this_process() -> int:
    """How many files this process moved aside."""
    return _moved


def features_root(folder: Path) -> Path:
    """DATA_DIR/features, from one of its symbol= or date= folders (or itself)."""
    while folder.name.startswith(("symbol=", "date=")):
        folder = folder.parent
    return folder


def quarantine_unreadable(files: list[str], root: Path) -> int:
    """Move each of `files` that cannot be read whole into root/_quarantine (same relative path); how many moved."""
    global _moved
    moved = 0
    for name in files:
        path = Path(name)
        try:
            pq.read_table(path)
            continue
        except FileNotFoundError:
            continue
        except (pa.ArrowException, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        target = _free_name(root / QUARANTINE / path.relative_to(root))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        moved += 1
        log.warning("feature store: moved the unreadable file %s aside to %s (%s); the other files are read",
                    path, target, reason[:200])
    with _lock:
        _moved += moved
    return moved


def quarantined_files(root: Path) -> list[Path]:
    """The files under root/_quarantine, by name."""
    folder = root / QUARANTINE
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def _free_name(target: Path) -> Path:
    """`target`, or with -1, -2, ... added when a file of that name was quarantined before."""
    candidate, n = target, 0
    while candidate.exists():
        n += 1
        candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
    return candidate

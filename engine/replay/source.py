"""Opening a replay file: its bytes, those of the one file inside a .zip archive, or of a gzipped file."""

from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

from engine.replay.batches import ReplayInputError

BOM = b"\xef\xbb\xbf"
_ZIP_MAGIC = b"PK\x03\x04"
_GZIP_MAGIC = b"\x1f\x8b"


@contextmanager
def open_replay_file(path: Path) -> Iterator[io.BufferedIOBase]:
    """The file's bytes, those of the one file inside a .zip archive (Binance serves its dumps zipped), or those of
    a gzipped file (captures are often kept as .jsonl.gz)."""
    try:
        with open(path, "rb") as raw:
            magic = raw.read(len(_ZIP_MAGIC))
            raw.seek(0)
            if magic.startswith(_GZIP_MAGIC):
                with gzip.GzipFile(fileobj=raw) as unzipped:
                    yield cast(io.BufferedIOBase, unzipped)
                return
            if magic != _ZIP_MAGIC:
                yield raw
                return
            with zipfile.ZipFile(raw) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()]
                if len(members) != 1:
                    raise ReplayInputError(f"{path}: a zip archive must hold exactly one file, it holds {len(members)}")
                with archive.open(members[0]) as member:
                    yield cast(io.BufferedIOBase, member)  # a ZipExtFile; typeshed says only IO[bytes]
    except FileNotFoundError:
        raise ReplayInputError(f"{path}: no such file") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # a torn or corrupt archive, as it is read
        raise ReplayInputError(f"{path}: cannot be read ({exc})") from exc

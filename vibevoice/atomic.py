"""Crash-safe file writes, used for every file the app keeps (chunks, manifests, caches, exports).

A reader — or a job resumed after a SIGKILL — sees either the old file or the complete new one,
never a torn write. A failed write (full disk) removes its temporary file so it does not make the
disk fuller, and raises the ``OSError`` so the caller can say what happened. A file written in blocks
(``open_atomic``: the exports stream their audio) has the same guarantees.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


@contextmanager
def open_atomic(path: Path) -> Iterator:
    """A temporary file beside ``path`` (opened ``w+b``: taggers read back what was written) that is
    fsynced and renamed over ``path`` when the block ends, and removed if it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w+b") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, write: Callable) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    with open_atomic(path) as f:
        write(f)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda f: f.write(data))


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in DISK_FULL

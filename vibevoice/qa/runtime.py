"""What every QA model shares: the thread budget, the offline guard and where caches go.

The QA models (CTranslate2 Whisper, two small torch networks) are run next to a renderer on a shared
2-core machine; more threads than that only add contention, and the torch networks are so small that
one thread is fastest. ``VIBEVOICE_QA_THREADS`` sets the budget (default 2).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from .. import paths

# No model is ever fetched: every QA model loads from a path inside an installed wheel.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def threads() -> int:
    return max(1, int(os.environ.get("VIBEVOICE_QA_THREADS", "2")))


@contextlib.contextmanager
def torch_threads(count: int = 1) -> Iterator[None]:
    """Run a small torch model on ``count`` threads, restoring the caller's setting afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cache(name: str) -> Path:
    """A folder for QA caches under the app's cache directory."""
    path = paths.cache_dir() / "qa" / name
    path.mkdir(parents=True, exist_ok=True)
    return path

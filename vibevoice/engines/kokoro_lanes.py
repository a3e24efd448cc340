"""Kokoro chunks rendered ahead on single-thread lanes: throughput over a job (issue 16).

A job is many short chunks, and one Kokoro call uses its intra-op threads poorly (its graph is a chain
of small ops). ``Lanes`` runs whole chunks side by side instead: a few worker threads, all on one
onnxruntime session created with one intra-op thread (``InferenceSession.run`` may be called from
several threads at once, and releases the GIL, so the lanes truly overlap; the phonemiser holds the
GIL, but one lane's phonemisation overlaps another's inference).

Measured on the 2 shared cores (bench/bench_kokoro_runtime.py ``--lanes``): one shared 1-thread
session was as fast as one session per lane and costs one session's memory; one all-threads session
shared by two lanes was the slowest (its threads fight each other). The audio is bit-identical to the
serial engine's, whatever the thread count (int8 MatMulInteger sums exactly).

``VIBEVOICE_KOKORO_WORKERS`` sets the number of lanes (1: every chunk in turn on the all-threads
session, as before); the default is one per core, at most ``MAX_DEFAULT``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

ENV = "VIBEVOICE_KOKORO_WORKERS"
MAX_DEFAULT = 4  # measured up to 2 (the cores here); more lanes only add memory per in-flight chunk


def workers() -> int:
    """Lanes to use: ``VIBEVOICE_KOKORO_WORKERS`` if set (≥ 1), else one per core up to ``MAX_DEFAULT``."""
    asked = os.environ.get(ENV, "").strip()
    if asked:
        try:
            return max(1, int(asked))
        except ValueError:
            raise ValueError(f"{ENV} must be a whole number of workers, got {asked!r}") from None
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT))


class Lanes:
    """A pool of ``count`` threads that run calls with ``session`` (loaded once, on first use) as theirs.

    ``current()`` is the session of the calling lane, None outside the lanes: the engine's inference
    asks it, so the same code renders on the caller's all-threads session or on a lane's.
    """

    def __init__(self, count: int, load: Callable[[], Any]) -> None:
        self.count = count
        self._load = load
        self._session: Any = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(count, thread_name_prefix="kokoro-lane")

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        return self._pool.submit(self._run, fn, args)

    def current(self) -> Any:
        return getattr(self._local, "session", None)

    def _run(self, fn: Callable[..., Any], args: tuple) -> Any:
        with self._lock:  # the first lane loads it; the others wait for that one session
            if self._session is None:
                self._session = self._load()
        self._local.session = self._session
        return fn(*args)

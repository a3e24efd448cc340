"""Kokoro chunks rendered ahead on single-thread lanes: throughput over a job (issue 16).

A job is many short chunks, and one Kokoro call spreads over its intra-op threads imperfectly (on a
quiet machine 2 threads gave RTF 0.41 vs 0.64 on one: ~78 % of two cores). ``Lanes`` runs whole
chunks side by side instead: a few worker threads, all on one onnxruntime session created with one
intra-op thread (``InferenceSession.run`` may be called from several threads at once and releases
the GIL; the phonemiser holds it, but only briefly).

Measured on the 2 shared cores under load 5-8 (bench/bench_kokoro_runtime.py ``--lanes``): the audio
is bit-identical to the serial engine's whatever the thread count (int8 MatMulInteger sums exactly),
but the lanes gave no throughput: this process got ~0.95 of a core however many threads it ran, and
two lanes were 0.90-1.05x the serial 2-thread engine (one thread serially was 1.19x). One shared
1-thread session was faster than a session per lane and costs one session's memory (~70-130 MB);
one 2-thread session shared by two lanes was the slowest. Phonemisation is ~0.1 % of the work, so
overlapping it gains nothing measurable. Hence lanes are opt-in: ``VIBEVOICE_KOKORO_WORKERS=N``
(default 1: every chunk in turn on the all-threads session, as before), for machines with idle cores.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)
ENV = "VIBEVOICE_KOKORO_WORKERS"
DEFAULT = 1  # no measured gain on the shared reference machine (see above)


def workers() -> int:
    """Lanes to use: ``VIBEVOICE_KOKORO_WORKERS`` if set (≥ 1, at most one per core), else ``DEFAULT``."""
    asked = os.environ.get(ENV, "").strip()
    if asked:
        try:
            return max(1, min(int(asked), os.cpu_count() or 1))
        except ValueError:  # asked inside a running job: a typo must not fail it
            log.warning("%s must be a whole number of workers, got %r; using %d", ENV, asked, DEFAULT)
    return DEFAULT


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

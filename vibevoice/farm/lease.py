"""One writer per job across the farm: a lease in Redis, renewed while rendering.

RQ delivers at least once, so a job can reach two workers (a redelivery after a network split, a
duplicate enqueue). Only the holder of the job's lease renders it and writes its manifest: the lease
is taken before the job is opened, renewed every ``tick`` by a thread of the render process, and
checked (``check``, the job's ``guard``) before every manifest write. A holder that falls silent for
``ttl`` seconds loses it; one whose process died on this host loses it at once, so a killed render
process is retried without waiting. The web process takes the same lease to edit, cancel or delete.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator

from ..errors import Conflict
from . import keys

# Renew (or release) only what we hold: compare the holder, then act, atomically on the server.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class LeaseLost(Conflict):
    """Another process holds this job now; this one must stop without writing anything."""


class Lease:
    """The right to render and write one job; ``holder`` says who has it (host:pid:random)."""

    def __init__(self, redis, job_id: str, ttl: float | None = None, tick: float = 0.5) -> None:
        self.redis, self.job_id, self.key = redis, job_id, keys.lease_key(job_id)
        self.ttl, self.tick = ttl or keys.LEASE_TTL, tick
        self.holder = keys.holder_id()
        self.lost = threading.Event()

    def acquire(self, wait: float = 0.0) -> bool:
        """Take the lease, waiting up to ``wait`` seconds for the current holder to let go or die."""
        deadline = time.monotonic() + wait
        while True:
            if self.redis.set(self.key, self.holder, nx=True, px=int(self.ttl * 1000)):
                return True
            self._take_over_from_the_dead()
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def holder_now(self) -> str | None:
        value = self.redis.get(self.key)
        return value.decode() if value else None

    def check(self) -> None:
        """Raise ``LeaseLost`` unless this process still holds the lease (the job's manifest guard)."""
        if self.lost.is_set() or self.holder_now() != self.holder:
            self.lost.set()
            raise LeaseLost(f"job {self.job_id} is held by {self.holder_now() or 'nobody'} now, not by "
                            f"{self.holder}; this process stops without writing it")

    def renew(self) -> bool:
        if not self.redis.eval(_RENEW, 1, self.key, self.holder, int(self.ttl * 1000)):
            self.lost.set()
        return not self.lost.is_set()

    def release(self) -> None:
        self.redis.eval(_RELEASE, 1, self.key, self.holder)

    @contextlib.contextmanager
    def kept(self, stop: threading.Event) -> Iterator[None]:
        """Renew the lease in a thread while the block runs; a cancel flag or a lost lease sets ``stop``."""
        done = threading.Event()

        def keep() -> None:
            while not done.wait(self.tick):
                try:
                    if not self.renew() or self.redis.exists(keys.cancel_key(self.job_id)):
                        stop.set()
                except Exception:  # noqa: BLE001 — Redis unreachable: keep rendering; the guard decides writes
                    continue

        thread = threading.Thread(target=keep, name=f"lease-{self.job_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _take_over_from_the_dead(self) -> None:
        """A holder on this host whose process is gone (a killed render process) cannot renew: free it now."""
        current = self.holder_now()
        host, _, rest = (current or "").partition(":")
        pid = rest.partition(":")[0]
        if current and host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
            self.redis.eval(_RELEASE, 1, self.key, current)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def holding(redis, job_id: str, wait: float = 2.0) -> Iterator[Lease]:
    """Hold the job's lease for a few writes (the web process editing, cancelling or deleting a job)."""
    lease = Lease(redis, job_id)
    if not lease.acquire(wait=wait):
        raise Conflict(f"job {job_id} is being rendered by a worker ({lease.holder_now()}); cancel it first "
                       "or wait for it to finish")
    try:
        yield lease
    finally:
        lease.release()

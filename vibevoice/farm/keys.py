"""Redis names and queue routing, shared by the web process and the workers.

A job goes to the queue ``vibevoice.<priority>.<engines>`` where ``engines`` is the sorted set of
engines it needs (``kokoro``, ``kokoro+piper``, ``vibevoice``). A worker listens, priority first, to
every queue whose engines it has, so RQ's strict queue order gives priorities, and a job for an
engine no worker has stays queued (``executor.FarmExecutor.waiting`` says so) instead of failing.
"""

from __future__ import annotations

import itertools
import os
import socket

from ..errors import BadInput, Unavailable
from ..job.model import PRIORITIES, Manifest

PREFIX = "vibevoice"
KNOWN_ENGINES = ("kokoro", "piper", "vibevoice", "qwen3")
LEASE_TTL = float(os.environ.get("VIBEVOICE_FARM_LEASE_TTL", "20"))  # seconds a silent holder keeps a job


def lease_key(job_id: str) -> str:
    return f"{PREFIX}:lease:{job_id}"


def cancel_key(job_id: str) -> str:
    return f"{PREFIX}:cancel:{job_id}"


def progress_key(job_id: str) -> str:
    return f"{PREFIX}:progress:{job_id}"


def delivery_key(job_id: str) -> str:
    """The RQ job of the job's latest submission (the web side asks it whether the farm gave up)."""
    return f"{PREFIX}:delivery:{job_id}"


def log_key(job_id: str) -> str:
    return f"{PREFIX}:log:{job_id}"


def engines_of(manifest: Manifest) -> list[str]:
    """The engines a job needs: its whole-script engine, or the engine of every speaker's voice."""
    if manifest.settings.engine != "voices":  # a whole-script engine (vibevoice, qwen3)
        return [manifest.settings.engine]
    return sorted({voice.engine for voice in manifest.voices.values()}) or ["kokoro"]


def queue_name(priority: str, engines: list[str]) -> str:
    return f"{PREFIX}.{priority}.{'+'.join(sorted(engines))}"


def queues_for(priorities: list[str], engines: list[str]) -> list[str]:
    """Every queue a worker with ``engines`` serves, all of the first priority before the next."""
    unknown = [p for p in priorities if p not in PRIORITIES]
    if unknown:
        raise BadInput(f"unknown queue {unknown[0]!r}; queues are {', '.join(PRIORITIES)}")
    subsets = [s for n in range(1, len(engines) + 1) for s in itertools.combinations(sorted(set(engines)), n)]
    return [queue_name(p, list(s)) for p in priorities for s in subsets]


def engines_served(queue_names: list[str]) -> set[str]:
    """The engine sets (as ``a+b`` strings) a worker's queues show it has."""
    return {name.split(".", 2)[2] for name in queue_names if name.startswith(PREFIX + ".") and name.count(".") >= 2}


def holder_id() -> str:
    """Who holds a lease: host and pid (a lease of a dead process on this host is taken over at once)."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def connect(url: str):
    """A Redis client for ``redis://``, ``rediss://`` (TLS) or ``unix://`` URLs (with user:password for ACLs)."""
    try:
        import redis
    except ImportError as err:
        raise Unavailable("the render farm is an optional extra: install it with ./scripts/install.sh farm") from err
    client = redis.Redis.from_url(url, health_check_interval=30, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as err:
        raise Unavailable(f"cannot reach the queue at {redact(url)}: {err}") from err
    return client


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def workers_key() -> str:
    """Hash: worker name → its engines and devices (RQ's own worker registry says which are alive)."""
    return f"{PREFIX}:workers"

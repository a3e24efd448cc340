"""The local audit log: who rendered what, when, with which voices — kept on this machine only.

One JSON object per line in ``$VIBEVOICE_HOME/audit.jsonl``, appended and flushed at each event (a job
created, blocked by the content filter, exported or deleted; a voice cloned). Scripts are recorded by
their SHA-256, not their text, so the log can be kept or shared without the content. Nothing here ever
leaves the machine; ``vibevoice audit`` prints it.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import paths

LOG = "audit.jsonl"
_lock = threading.Lock()


def local_actor() -> str:
    """Who is running this process, for events that do not come over the network."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"local:{user}@{socket.gethostname()}"


def script_hash(text: str | bytes) -> str:
    return hashlib.sha256(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()


def voice_summary(voices: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """speaker → voice id, engine and, for a cloned voice, its recording's hash and consent time."""
    out = {}
    for speaker, voice in voices.items():
        entry = {"voice": voice.id, "engine": voice.engine}
        if voice.spec.kind == "clone":
            consent = voice.spec.consent
            entry.update(clone=True, clip_sha256=consent.clip_sha256 if consent else None,
                         consent_at=consent.confirmed_at if consent else None)
        out[speaker] = entry
    return out


def record(event: str, actor: str | None = None, **fields: Any) -> None:
    """Append one event. A failure to log never stops a render, but it is not silent either."""
    entry = {"time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "event": event,
             "actor": actor or local_actor(), **fields}
    line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
    try:
        with _lock, open(path(), "a", encoding="utf-8") as log:
            log.write(line)
            log.flush()
            os.fsync(log.fileno())
    except OSError as error:
        import warnings

        warnings.warn(f"could not write the audit log {path()}: {error}", RuntimeWarning, stacklevel=2)


def read(limit: int | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` events (all when None), oldest first; damaged lines are skipped."""
    if not path().exists():
        return []
    events = []
    for line in path().read_text("utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events[-limit:] if limit else events


def path() -> Path:
    return paths.home() / LOG

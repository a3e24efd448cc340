"""The per-line plan cache: re-planning after one edited line re-plans only what that line touched.

A line's key hashes the planner's fingerprint (model, prompt version, settings) and the lines its plan
depends on (``Planner.span``: the line itself and the context the planner showed with it), with their
speakers, text and hints. Entries are small JSON files written atomically, so a crash or two processes
planning at once leave either a whole entry or none. Fallbacks are never cached: the next run tries
the planner again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from pydantic import ValidationError

from ..script import Script
from .schema import PLAN_VERSION, LinePlan

log = logging.getLogger(__name__)


def line_key(fingerprint: str, script: Script, index: int, span: range) -> str:
    lines = [[ln.speaker, ln.text, ln.hints, ln.language] for ln in script.lines[span.start:span.stop]]
    blob = json.dumps([PLAN_VERSION, fingerprint, index - span.start, lines], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class PlanCache:
    def __init__(self, directory: Path | None):
        self.directory = directory / "plans" if directory else None

    def get(self, key: str, index: int) -> LinePlan | None:
        if self.directory is None:
            return None
        path = self._path(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return LinePlan.model_validate(data | {"line_index": index})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, ValidationError) as err:  # a damaged entry is only a miss
            log.warning("plan cache entry %s unreadable (%s); planning the line again", path.name, err)
            return None

    def put(self, key: str, plan: LinePlan) -> None:
        if self.directory is None:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        except OSError as err:  # a full or read-only disk must not stop planning
            log.warning("could not write plan cache entry %s: %s", path, err)
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(plan.model_dump_json(exclude={"line_index"}))
            os.replace(tmp, path)
        except OSError as err:
            log.warning("could not write plan cache entry %s: %s", path, err)
            Path(tmp).unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

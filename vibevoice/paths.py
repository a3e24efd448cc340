"""Where the app keeps its own files: jobs, user voice templates and caches.

Everything lives under one directory so a user can see, back up or delete it, and so Docker can mount
it as a volume. ``VIBEVOICE_HOME`` overrides it; the default is the platform's data directory for the
app (e.g. ``~/.local/share/vibevoice-webui`` on Linux), never a shared cache of another tool.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir

APP_NAME = "vibevoice-webui"
REPO_ROOT = Path(__file__).resolve().parent.parent
PRESETS_DIR = REPO_ROOT / "presets"


def home() -> Path:
    """The app's data directory (created on first use)."""
    path = Path(os.environ.get("VIBEVOICE_HOME") or user_data_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def jobs_dir() -> Path:
    return _sub("jobs")


def user_voices_dir() -> Path:
    return _sub("voices")


def cache_dir() -> Path:
    return _sub("cache")


def _sub(name: str) -> Path:
    path = home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path

"""Where the app keeps its own files: jobs, user voice templates and caches.

Everything lives under one directory so a user can see, back up or delete it, and so Docker can mount
it as a volume. ``VIBEVOICE_HOME`` overrides it; the default is the platform's data directory for the
app (e.g. ``~/.local/share/vibevoice-webui`` on Linux), never a shared cache of another tool.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir

from .errors import BadInput

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


def models_dir() -> Path:
    """Where checkpoints go by default (``VIBEVOICE_HOME/models``)."""
    return _sub("models")


CONFIGURED_MODEL_DIRS = ("VIBEVOICE_MODEL_DIR", "VIBEVOICE_QWEN3_MODEL_DIR", "QWEN3_TTS_MODEL_DIR")


def allowed_model_dirs() -> list[Path]:
    """The folders a client of the server may name a checkpoint in: ``VIBEVOICE_MODEL_DIRS``
    (``os.pathsep``-separated; default: the app's models folder), plus each configured checkpoint itself
    (``VIBEVOICE_MODEL_DIR``, ``VIBEVOICE_QWEN3_MODEL_DIR``)."""
    listed = [p for p in os.environ.get("VIBEVOICE_MODEL_DIRS", "").split(os.pathsep) if p.strip()]
    folders = [Path(p).expanduser().resolve() for p in listed] or [models_dir().resolve()]
    for name in CONFIGURED_MODEL_DIRS:  # the operator's own checkpoints are allowed by naming them
        if os.environ.get(name, "").strip():
            folders.append(Path(os.environ[name]).expanduser().resolve())
    return folders


def check_model_dir(value: str | None) -> None:
    """Refuse a model directory from a client unless it lies in an allowed folder (never look inside first).

    A server must not let a request probe or list its folders: the answer names the allowed folders
    (configuration), never what is or is not in the one asked for.
    """
    if not value:
        return
    path = Path(value).expanduser().resolve()
    if not any(path == folder or path.is_relative_to(folder) for folder in allowed_model_dirs()):
        allowed = ", ".join(str(f) for f in allowed_model_dirs())
        raise BadInput(f"settings.model_dir: {value[:200]} is not in an allowed models folder ({allowed}); put the "
                       "checkpoint there, or have the operator add its folder to VIBEVOICE_MODEL_DIRS")


def _sub(name: str) -> Path:
    path = home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path

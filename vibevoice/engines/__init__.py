"""Acoustic engines, looked up by the name a voice template gives (``kokoro``, ``piper``, ...)."""

from __future__ import annotations

import functools

from ..errors import BadInput, Unavailable
from .base import SAMPLE_RATE, Capabilities, ChunkAudio, Engine, Segment

__all__ = ["SAMPLE_RATE", "Capabilities", "ChunkAudio", "Engine", "Segment", "get_engine", "available_engines"]


def available_engines() -> list[str]:
    from . import piper
    from .qwen3 import compat

    return ["kokoro"] + (["piper"] if piper.available() else []) + ["vibevoice"] + (["qwen3"] if compat.installed() else [])


def get_engine(name: str, model_dir: str | None = None, dtype: str | None = None) -> Engine:
    """One shared instance per engine (and checkpoint and precision), so weights load once per process."""
    return _shared(name, model_dir, None if dtype == "auto" else dtype)


@functools.cache
def _shared(name: str, model_dir: str | None, dtype: str | None) -> Engine:
    if name == "kokoro":
        from .kokoro import KokoroEngine

        return KokoroEngine()
    if name == "piper":
        from . import piper

        if not piper.available():
            raise Unavailable("the Piper engine is an optional extra: install it with ./scripts/install.sh piper")
        return piper.PiperEngine()
    if name == "vibevoice":
        from .vibevoice import VibeVoiceEngine

        return VibeVoiceEngine(model_dir, dtype=dtype)
    if name == "qwen3":
        from .qwen3 import Qwen3Engine

        return Qwen3Engine(model_dir, dtype=dtype)
    raise BadInput(f"unknown engine {name!r}; available: {', '.join(available_engines())}")

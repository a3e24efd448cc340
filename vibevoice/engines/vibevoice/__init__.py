"""VibeVoice (1.5B and Large) through transformers: long-form, multi-speaker, voice-cloned, resumable.

Where things live: ``configuration`` (checking and loading a checkpoint; device, dtype, attention),
``processing`` (speaker roles, reference clips, prompts, scenes), ``state`` (the only code touching
transformers' private generation methods: what one call must hand the next), ``generation`` (chunked
generation, saving and resuming), ``preflight`` (memory and time before a render) and ``engine`` (the
engine the job runner uses; its docstring says which reference implementation the audio matches). The
``vibevoice preflight`` command lives in ``vibevoice.cli.preflight``.
"""

from __future__ import annotations

from .configuration import CheckpointError, inspect_checkpoint
from .engine import VibeVoiceEngine
from .generation import StateMismatch
from .processing import ClipError
from .state import AdapterMismatch

__all__ = ["VibeVoiceEngine", "CheckpointError", "ClipError", "StateMismatch", "AdapterMismatch",
           "inspect_checkpoint", "preflight", "PreflightReport"]


def __getattr__(name: str):
    if name in ("preflight", "PreflightReport"):
        from . import preflight as module

        return getattr(module, name)
    raise AttributeError(name)

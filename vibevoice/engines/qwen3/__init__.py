"""The Qwen3-TTS engine (``engine``), its checkpoint checks, instruct text, runaway guard and adapter."""

from .engine import Qwen3Engine, available

__all__ = ["Qwen3Engine", "available"]

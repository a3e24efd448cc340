"""The audible disclosure: a short spoken notice that the audio is AI-generated.

Tags can be stripped and a watermark needs a detector; a listener hears this. It is spoken by a fixed
neutral preset of the embedded engine (never by a cloned voice), in the script's main language, at the
start or the end of the programme. ``auto`` (the default) puts it at the start whenever a speaker is a
cloned voice, and leaves it out otherwise; ``start``/``end`` always add it; ``off`` never does.
The export places it (``export.layout`` leaves room for it) and gives it its own subtitle cue.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Literal

import numpy as np
import soundfile as sf

from . import paths
from .atomic import write_bytes_atomic
from .audio import wav_bytes
from .engines import get_engine
from .job.model import Placement
from .script import Script
from .voices import VoiceTemplate, load_templates

TEXT = {"en": "This audio was generated with artificial intelligence.", "zh": "本音频由人工智能生成。"}
VOICE = {"en": "mid-blend", "zh": "zh-mid"}
GAP = 0.8  # seconds between the notice and the programme


def placement(setting: Placement, voices: dict[str, VoiceTemplate]) -> Literal["start", "end"] | None:
    if setting == "auto":
        return "start" if any(v.spec.kind == "clone" for v in voices.values()) else None
    return None if setting == "off" else setting


def language(script: Script) -> str:
    """The notice's language: Mandarin when most lines are Mandarin, else English."""
    zh = sum(line.language == "zh" for line in script.lines)
    return "zh" if zh * 2 > len(script.lines) else "en"


@lru_cache(maxsize=2)
def notice(lang: str) -> tuple[str, np.ndarray]:
    """The notice's text and audio (float32, 24 kHz), rendered once per machine and cached."""
    voice = load_templates()[VOICE[lang]]
    engine = get_engine(voice.engine)
    key = hashlib.sha256(f"{engine.version}|{voice.spec.model_dump_json()}|{TEXT[lang]}".encode()).hexdigest()[:16]
    path = paths.cache_dir() / "disclosure" / f"{lang}-{key}.wav"
    if path.exists():
        audio, _ = sf.read(path, dtype="float32")
        return TEXT[lang], audio
    audio = np.asarray(engine.speak(TEXT[lang], voice), np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, wav_bytes(audio, "FLOAT"))
    return TEXT[lang], audio

"""Audio primitives every stage shares: the sample rate, PCM/WAV encoding, click-free fades, the clock.

A leaf on purpose: engines, the job runner, export, disclosure, the page and the CLI all use these, so
this module imports nothing of the project. Audio is float32 mono at ``SAMPLE_RATE`` everywhere.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

SAMPLE_RATE = 24_000  # every engine delivers 24 kHz mono float32; resampling happens inside the engine
FADE_SECONDS = 0.005  # long enough that no join clicks, short enough to be inaudible as a fade


def samples(seconds: float) -> int:
    return int(round(seconds * SAMPLE_RATE))


def fade(audio: np.ndarray) -> np.ndarray:
    """Raised-cosine fade in and out over a few milliseconds, so no join between chunks can click."""
    n = min(samples(FADE_SECONDS), audio.size // 2)
    if n == 0:
        return audio
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))).astype(np.float32)
    audio = audio.copy()
    audio[:n] *= ramp
    audio[-n:] *= ramp[::-1]
    return audio


def pcm16(audio: np.ndarray) -> np.ndarray:
    return np.round(np.clip(audio, -1.0, 32767 / 32768) * 32768).astype(np.int16)


def wav_bytes(audio: np.ndarray, subtype: str = "PCM_16", strings: dict[str, str] | None = None,
              container: str = "WAV") -> bytes:
    """Encode in memory first: libsndfile swallows write errors raised inside its I/O callbacks, so
    writing through it directly would hide a full disk; a plain ``write`` of bytes raises it.
    ``strings`` (title, comment, software, date, artist) become the file's INFO chunk or comments."""
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", SAMPLE_RATE, 1, subtype, format=container) as out:
        for key, value in (strings or {}).items():
            setattr(out, key, value)
        out.write(audio)
    return buffer.getvalue()


def clock(seconds: float) -> str:
    """``75`` → ``1:15``; ``3725`` → ``1:02:05`` (for progress, ETAs and estimates)."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"

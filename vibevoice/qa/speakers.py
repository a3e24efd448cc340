"""Is each line in its speaker's voice, and does a voice stay the same over a long programme?

Speaker embeddings come from Resemblyzer's encoder (a 17 MB GE2E LSTM inside its wheel): 256 values
of unit length per utterance, compared by cosine similarity. Same voice, different text scores
0.93-0.97 here; the six English presets are at most 0.81 apart (shared notes on offline weights).

- ``attribution`` (the TTSD-eval idea): a line is attributed to the speaker whose reference it is
  closest to; the margin is how much closer its own speaker is than the nearest other one.
- ``drift``: each line of a speaker against the centroid of that speaker's first lines; a voice
  that wanders late in a long render shows up as a falling curve.
- ``voice_reference``: the embedding a voice *should* have. A cloning voice's clip is its own
  reference; a Kokoro or Piper voice renders a fixed neutral passage. Embeddings are cached on disk
  by the voice's content (spec, engine version, passage), so changing a blend invalidates them.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import soxr
from pydantic import BaseModel

from .. import paths
from ..atomic import write_atomic
from ..engines import get_engine
from ..voices import CloneSpec, VoiceTemplate
from . import runtime

ENCODER_RATE = 16_000
EMBEDDING_SIZE = 256
MIN_SPEECH = 0.2  # seconds of speech (after trimming silences) below which there is no embedding
EARLY_LINES = 3  # lines of a speaker that define "how they sounded at first" for drift


class Attribution(BaseModel):
    speaker: str
    closest: str
    similarity: float  # to the line's own speaker's reference
    margin: float  # own similarity minus the best other speaker's (negative: sounds like someone else)

    @property
    def correct(self) -> bool:
        return self.closest == self.speaker


@functools.cache
def encoder():
    from resemblyzer import VoiceEncoder

    with runtime.torch_threads(1):
        return VoiceEncoder("cpu", verbose=False)


def embed(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Unit-length speaker embedding of one utterance (long silences are trimmed first); all zeros
    when there is almost no speech."""
    from resemblyzer import preprocess_wav

    audio = np.asarray(audio, np.float32)
    speech = preprocess_wav(soxr.resample(audio, sample_rate, ENCODER_RATE)) if np.abs(audio).max(initial=0) > 1e-4 \
        else audio[:0]
    if speech.size < MIN_SPEECH * ENCODER_RATE:  # nothing to recognise a voice by: similar to no one
        return np.zeros(EMBEDDING_SIZE, np.float32)
    with runtime.torch_threads(1):  # a tiny LSTM: one thread is fastest, and the cores are shared
        return encoder().embed_utterance(speech).astype(np.float32)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


def attribute(embedding: np.ndarray, speaker: str, references: dict[str, np.ndarray]) -> Attribution:
    """Which reference one line's embedding is closest to, and by how much its own speaker wins."""
    scores = {name: similarity(embedding, ref) for name, ref in references.items()}
    own = scores.get(speaker, float("nan"))
    others = [s for name, s in scores.items() if name != speaker]
    return Attribution(speaker=speaker, closest=max(scores, key=scores.get), similarity=round(own, 4),
                       margin=round(own - max(others), 4) if others else round(own, 4))


def attribution(line_embeddings: list[np.ndarray], line_speakers: list[str],
                references: dict[str, np.ndarray]) -> list[Attribution]:
    return [attribute(e, s, references) for e, s in zip(line_embeddings, line_speakers)]


def accuracy(attributions: list[Attribution]) -> float:
    """Share of lines closest to their own speaker's reference."""
    return sum(a.correct for a in attributions) / len(attributions) if attributions else float("nan")


def drift(line_embeddings: list[np.ndarray], line_speakers: list[str], early: int = EARLY_LINES) -> list[float | None]:
    """Per line: similarity to the centroid of its speaker's first ``early`` lines (None for those lines)."""
    out: list[float | None] = []
    seen: dict[str, list[np.ndarray]] = {}
    for embedding, speaker in zip(line_embeddings, line_speakers):
        first = seen.setdefault(speaker, [])
        if len(first) < early:
            first.append(embedding)
            out.append(None)
        else:
            out.append(round(similarity(embedding, np.mean(first, axis=0)), 4))
    return out


def voice_reference(voice: VoiceTemplate, language: str | None = None) -> np.ndarray:
    """The embedding ``voice`` should produce, cached on disk by the voice's content."""
    from ..engines.vibevoice.processing import REFERENCE_TEXT, load_clip

    language = language or ("en" if "en" in voice.languages else "zh")
    clip = voice.spec.clip if isinstance(voice.spec, CloneSpec) else None
    identity = {"spec": voice.spec.model_dump(), "speed": voice.speed, "text": REFERENCE_TEXT[language],
                "encoder": "resemblyzer-0.1.4"}
    if clip is None:
        identity["engine"] = get_engine(voice.engine).version
    else:
        identity["clip"] = hashlib.sha256(_clip_path(clip).read_bytes()).hexdigest()
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    cached = runtime.cache("voices") / f"{key}.npy"
    if cached.exists():
        return np.load(cached)
    if clip is not None:
        audio = load_clip(_clip_path(clip)).audio
    else:
        audio = get_engine(voice.engine).speak(REFERENCE_TEXT[language], voice, voice.speed)
    embedding = embed(audio, 24_000)
    write_atomic(cached, lambda f: np.save(f, embedding))
    return embedding


def _clip_path(clip: str) -> Path:
    path = Path(clip).expanduser()
    return path if path.is_absolute() else paths.user_voices_dir() / path

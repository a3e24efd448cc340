"""The engine interface every acoustic engine implements, small on purpose.

An engine says what it can do (``Capabilities``: languages, speakers, cloning, which delivery fields
it performs) and turns segments (words plus a typed ``LineDelivery``) into audio (``synthesize``).
The job owns everything else: chunking, the job directory, retries, progress, and reporting the
delivery an engine does not perform. A stateful engine (VibeVoice) keeps its carried state inside the
job directory it is handed. Adding an engine means one file or folder plus its presets.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..audio import SAMPLE_RATE
from ..delivery import LineDelivery
from ..errors import BadInput
from ..voices import VoiceTemplate

__all__ = ["SAMPLE_RATE", "Capabilities", "ChunkAudio", "Engine", "Segment", "speak_in_turn", "split_text"]


@dataclass(frozen=True)
class Capabilities:
    name: str
    languages: frozenset[str]
    max_speakers: int
    cloning: bool
    # True when output depends on a random seed (then the seed is part of each chunk's cache key).
    seeded: bool = False
    # Delivery fields the engine itself performs ("rate", "emotion", "emphasis", ...); the job reports
    # the rest (pauses are laid out by the timeline of a line-by-line job, not by the engine).
    plan_fields: frozenset[str] = frozenset()
    # Longest text the engine speaks in one call; longer lines are split at sentence boundaries.
    max_chunk_chars: int = 400
    # Seconds of compute per second of audio on a 2-core CPU, for estimates (measured in bench/).
    typical_rtf: float = 1.0


@dataclass(frozen=True)
class Segment:
    """Words of one script line (or part of a long one) to speak in one voice."""

    line_index: int
    speaker: str
    text: str
    language: str
    delivery: LineDelivery = LineDelivery()


@dataclass
class ChunkAudio:
    audio: np.ndarray  # float32, mono, SAMPLE_RATE
    # (line_index, start_sample, end_sample) for each segment, so subtitles know where a line is.
    spans: list[tuple[int, int, int]] = field(default_factory=list)
    # (word, start s, end s) in this audio, when the engine knows them (Kokoro's predicted durations).
    words: list[tuple[str, float, float]] = field(default_factory=list)


class Engine(ABC):
    capabilities: Capabilities
    # Part of every chunk's cache key: bump when the same input would give different audio.
    version: str = "1"

    @property
    def loaded(self) -> bool:
        """Whether this process already holds the engine's weights (estimates: a warm start is cheaper)."""
        return False

    def check_voice(self, voice: VoiceTemplate) -> None:
        """Raise ``BadInput`` with a user-facing reason when this engine cannot use ``voice``."""
        if voice.engine != self.capabilities.name:
            raise BadInput(f"voice {voice.id!r} is for the {voice.engine} engine, not {self.capabilities.name}")

    @abstractmethod
    def synthesize(self, segments: list[Segment], voices: dict[str, VoiceTemplate]) -> ChunkAudio:
        """Speak ``segments`` (in order) with ``voices`` keyed by speaker, as each segment's delivery asks."""


def speak_in_turn(segments: list[Segment], voices: dict[str, VoiceTemplate], speak) -> ChunkAudio:
    """For engines that speak one segment at a time: ``speak(text, spec, speed)`` for each, end to end,
    with each segment's span so subtitles know where its line lies. The spec is the voice's variant for
    the segment's emotion when the template defines one (``VoiceTemplate.spec_for``)."""
    pieces, spans, offset = [], [], 0
    for seg in segments:
        spec = voices[seg.speaker].spec_for(seg.delivery.emotion)
        audio = speak(seg.text, spec, seg.delivery.speed)
        pieces.append(audio)
        spans.append((seg.line_index, offset, offset + audio.size))
        offset += audio.size
    return ChunkAudio(np.concatenate(pieces) if pieces else np.zeros(0, np.float32), spans)


_SENTENCE_END = re.compile(r"(?<=[.!?;。！？；…])\s*")
_PHRASE_END = re.compile(r"(?<=[,:，、：])\s*")


def split_text(text: str, max_chars: int, first_chars: int | None = None) -> list[str]:
    """Split ``text`` into pieces of at most ``max_chars``, at sentence ends, else phrase ends, else spaces.

    Sentences are packed greedily so a long monologue becomes few, natural pieces instead of one
    piece per sentence (each call to an engine costs a little start-up time and breath). With
    ``first_chars``, the first clause (up to a comma, colon or sentence end, at most that long) is a
    piece of its own: the programme's first chunk, whose render time is what a listener waits before
    hearing anything (issue 16: "Welcome back to the show," renders in ~0.4 of the whole sentence's time).
    """
    if first_chars is not None and (head := _first_clause(text, min(first_chars, max_chars))):
        return [head[0], *split_text(head[1], max_chars)]
    if len(text) <= max_chars:
        return [text]
    pieces: list[str] = []
    for sentence in _pieces(text, _SENTENCE_END):
        if len(sentence) > max_chars:
            pieces.extend(_hard_split(sentence, max_chars))
        elif pieces and len(pieces[-1]) + 1 + len(sentence) <= max_chars:
            pieces[-1] = _join(pieces[-1], sentence)
        else:
            pieces.append(sentence)
    return pieces


_CLAUSE_END = re.compile(r"(?<=[.!?;:,…])\s+|(?<=[。！？；：，、])\s*")  # a comma in "1,000" is no clause end


def _first_clause(text: str, limit: int) -> tuple[str, str] | None:
    """``text`` cut after its first clause, if that clause and the phrase after it are each at least two
    words (four characters of Chinese) and the clause at most ``limit`` characters; else None. So
    "Welcome back to the show, everyone." stays whole: "everyone." is no phrase to start a piece with."""
    for end in _CLAUSE_END.finditer(text):
        head, rest = text[:end.start()].strip(), text[end.end():].strip()
        if len(head) > limit:
            return None
        following = _CLAUSE_END.split(rest, maxsplit=1)[0]
        if _enough(head) and _enough(following):
            return head, rest
    return None


def _enough(text: str) -> bool:
    return len(text.split()) >= 2 or len(_CJK.findall(text)) >= 4


def _hard_split(sentence: str, max_chars: int) -> list[str]:
    out: list[str] = []
    for phrase in _pieces(sentence, _PHRASE_END):
        while len(phrase) > max_chars:
            cut = phrase.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            out.append(phrase[:cut].strip())
            phrase = phrase[cut:].strip()
        if out and len(out[-1]) + 1 + len(phrase) <= max_chars:
            out[-1] = _join(out[-1], phrase)
        elif phrase:
            out.append(phrase)
    return out


def _pieces(text: str, pattern: re.Pattern) -> list[str]:
    return [p.strip() for p in pattern.split(text) if p.strip()]


_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")


def _join(left: str, right: str) -> str:
    """Join two pieces with a space, except inside Chinese text, which has none."""
    return left + ("" if _CJK.match(left[-1:]) else " ") + right

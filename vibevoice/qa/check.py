"""The per-take gate: is this freshly rendered chunk worth keeping?

The renderer calls ``check_take`` after each chunk and re-renders the ones that fail. It has to be
cheap (tiny.en for English, Whisper base otherwise, one speaker embedding) and to fail only takes a
listener would reject: words missing or garbled, or a voice that sounds like another speaker.

Default thresholds, from measurements on the benchmark scripts (bench/bench_quality.py, report in
bench/reports/quality/) and the tests' constructed failures:
- ``max_error_rate`` 0.25 with at least 2 token errors: Kokoro presets read English at 0-3 % WER
  per programme and single lines rarely above 15 %; a skipped clause or a garbled sentence is well
  above 25 %. Requiring 2 errors keeps one misheard word in a two-word line from failing it.
- ``min_similarity`` 0.70: same-voice lines score 0.80-0.97 against the voice's reference (short
  lines lowest), other presets 0.55-0.81.
- ``min_margin`` 0.0: the take must be closer to its own speaker than to any other in the cast,
  the attribution rule. Wrong-voice takes measured margins of -0.1 to -0.4.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from .intelligibility import error_rate
from .recognise import transcribe
from .speakers import attribute, embed

SAMPLE_RATE = 24_000


class Thresholds(BaseModel):
    max_error_rate: float = 0.25
    min_errors: int = 2  # token errors needed before the error rate can fail a take
    min_similarity: float = 0.70
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
                     similarity=similarity, margin=margin, closest=closest, reasons=reasons)

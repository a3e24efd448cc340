"""Did the voice say the script? Word error rate (English) or character error rate (Mandarin).

The audio is transcribed by Whisper (``recognise``) and both sides are normalised (``normalise``)
so that only spoken differences count; an English compound written as one word on one side and two
on the other ("earplugs", "ear plugs") is one word. The edit counts are returned too: a deletion-heavy line
means swallowed words, an insertion-heavy one babbling or a repeated phrase.
"""

from __future__ import annotations

import jiwer
import numpy as np
from pydantic import BaseModel

from .normalise import normalise, tokens


class Intelligibility(BaseModel):
    unit: str  # "wer" (English words) or "cer" (Mandarin characters)
    error_rate: float
    substitutions: int
    deletions: int
    insertions: int
    reference_length: int
    reference: str  # both sides as scored, after normalisation
    hypothesis: str


def error_rate(reference: str, hypothesis: str, language: str) -> Intelligibility:
    """Compare a script line with a transcript of its audio (``language``: en, zh or mixed)."""
    ref, hyp = tokens(reference, language), tokens(hypothesis, language)
    if language == "en":
        ref, hyp = _merge_split(ref, set(hyp)), _merge_split(hyp, set(ref))
    unit = "wer" if language == "en" else "cer"
    shown = {"reference": normalise(reference, language), "hypothesis": normalise(hypothesis, language)}
    if not ref:
        return Intelligibility(unit=unit, error_rate=float(bool(hyp)), substitutions=0, deletions=0,
                               insertions=len(hyp), reference_length=0, **shown)
    if not hyp:
        return Intelligibility(unit=unit, error_rate=1.0, substitutions=0, deletions=len(ref), insertions=0,
                               reference_length=len(ref), **shown)
    # jiwer splits on spaces, so each token (a word or a toned syllable) is one "word" to it.
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    return Intelligibility(unit=unit, error_rate=out.wer, substitutions=out.substitutions, deletions=out.deletions,
                           insertions=out.insertions, reference_length=len(ref), **shown)


def _merge_split(words: list[str], other: set[str]) -> list[str]:
    """Join two neighbours the other side writes as one word ("ear plugs" / "earplugs"): a spelling
    choice, not a speech error."""
    out: list[str] = []
    for word in words:
        if out and out[-1] + word in other and out[-1] not in other | {""}:
            out[-1] += word
        else:
            out.append(word)
    return out


def score_line(audio: np.ndarray, sample_rate: int, text: str, language: str) -> tuple[Intelligibility, str]:
    """Transcribe one line's audio and score it against its text; also returns the raw transcript."""
    from .recognise import transcribe

    transcript = transcribe(audio, sample_rate, language)
    return error_rate(text, transcript.text, language), transcript.text

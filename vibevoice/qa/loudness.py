"""Level and pace: loudness per line and per speaker, true peak, and speaking rate against the plan.

Loudness is ITU-R BS.1770 (pyloudnorm), the same meter the exporter normalises with. Speakers whose
loudness differs by more than a couple of LU make a listener reach for the volume; the per-speaker
spread shows it. True peak is measured on 4x oversampled audio, as the exporter's limiter does.

Speaking rate is words per second for English and Han characters (one syllable each) per second for
Mandarin, over the line's speech (leading and trailing silence excluded). A plan's ``rate`` is a
factor (0.7-1.3) on the voice's own pace, so it is checked as a ratio: each line's rate against the
speaker's median rate at factor 1, times the line's factor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import soxr

from .normalise import tokens

MIN_LUFS_SECONDS = 0.4  # one BS.1770 gating block
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_SPEECH_DB = -40.0  # below the line's peak: where speech starts and ends


def lufs(audio: np.ndarray, sample_rate: int) -> float | None:
    """Integrated loudness in LUFS, or None for audio too short or silent to measure."""
    import pyloudnorm

    if audio.size < MIN_LUFS_SECONDS * sample_rate or not np.any(audio):
        return None
    value = pyloudnorm.Meter(sample_rate).integrated_loudness(np.asarray(audio, np.float64))
    return round(float(value), 2) if np.isfinite(value) else None


def true_peak_db(audio: np.ndarray, sample_rate: int) -> float:
    over = soxr.resample(np.asarray(audio, np.float32), sample_rate, 4 * sample_rate)
    peak = float(np.abs(over).max()) if over.size else 0.0
    return round(20 * np.log10(max(peak, 1e-9)), 2)


def true_peak_db_streamed(read, total: int, sample_rate: int, block: int = 1 << 20) -> float:
    """``true_peak_db`` of a programme read piece by piece; each piece is oversampled with a little of
    its neighbours, which is then dropped, so the edges see the same filter as the middle."""
    context, peak = 256, 0.0
    for lo in range(0, total, block):
        a, z = max(0, lo - context), min(total, lo + block + context)
        over = soxr.resample(np.asarray(read(a, z), np.float32), sample_rate, 4 * sample_rate)
        inner = over[4 * (lo - a):4 * (min(total, lo + block) - a)]
        peak = max(peak, float(np.abs(inner).max()) if inner.size else 0.0)
    return round(20 * np.log10(max(peak, 1e-9)), 2)


def speech_seconds(audio: np.ndarray, sample_rate: int) -> float:
    """Duration from the first to the last sample within 40 dB of the line's peak."""
    if not audio.size:
        return 0.0
    loud = np.flatnonzero(np.abs(audio) > np.abs(audio).max() * 10 ** (_SPEECH_DB / 20))
    return (loud[-1] - loud[0] + 1) / sample_rate if loud.size else 0.0


def spoken_units(text: str, language: str) -> int:
    """Words (English) or syllables (Han characters, plus any embedded English words) in ``text``."""
    if language == "en":
        return len(tokens(text, "en"))
    return len(_HAN.findall(text)) + len(tokens(_HAN.sub(" ", text), "en"))


def speaking_rate(audio: np.ndarray, sample_rate: int, text: str, language: str) -> float | None:
    seconds = speech_seconds(audio, sample_rate)
    return round(spoken_units(text, language) / seconds, 3) if seconds > 0 else None


def rate_vs_plan(rates: list[float | None], speakers: list[str], factors: list[float]) -> list[float | None]:
    """Each line's rate over its speaker's median rate-at-factor-1 times the line's planned factor
    (1.0 = exactly as planned)."""
    base: dict[str, float] = {}
    for speaker in set(speakers):
        own = [r / f for r, s, f in zip(rates, speakers, factors) if s == speaker and r]
        if own:
            base[speaker] = float(np.median(own))
    return [round(r / (base[s] * f), 3) if r and s in base else None for r, s, f in zip(rates, speakers, factors)]


def speaker_loudness(line_audio: Iterable[np.ndarray], speakers: list[str], sample_rate: int) -> dict[str, float | None]:
    """Integrated loudness of each speaker's lines joined together, measured line by line (a 90-minute
    programme's lines are never all in memory at once)."""
    from ..loudness import LoudnessMeter

    meters = {s: LoudnessMeter(sample_rate) for s in dict.fromkeys(speakers)}
    voiced = dict.fromkeys(meters, False)
    for audio, who in zip(line_audio, speakers):
        meters[who].add(audio)
        voiced[who] = voiced[who] or bool(np.any(audio))
    out = {}
    for who, meter in meters.items():
        value = meter.integrated() if voiced[who] and meter.samples >= MIN_LUFS_SECONDS * sample_rate else None
        out[who] = round(value, 2) if value is not None and np.isfinite(value) else None
    return out


def spread(values: dict[str, float | None]) -> float | None:
    """Loudest minus quietest speaker, in LU."""
    known = [v for v in values.values() if v is not None]
    return round(max(known) - min(known), 2) if len(known) > 1 else (0.0 if known else None)

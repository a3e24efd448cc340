"""Finished chunks → one programme: pauses, click-free joins, −16 LUFS, WAV/MP3/SRT/VTT and stems.

The timeline is laid out from the script, not guessed from the audio: a natural gap when the speaker
changes, a shorter one between lines of one speaker, and exactly the silence a ``[pause]`` asks for.
Each chunk fades in and out over a few milliseconds so no join can click. Loudness follows the
podcast convention (−16 LUFS integrated, true peak ≤ −1 dBTP, EBU R128 / ITU-R BS.1770 via
pyloudnorm); a gentle look-ahead limiter catches the few peaks the gain would push over the ceiling.
Every cue in the subtitles is one script line, timed from where its audio was placed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import lameenc
import numpy as np
import pyloudnorm
import soundfile as sf
import soxr
from mutagen.id3 import COMM, ID3, TIT2, TPE1, TSSE
from scipy.ndimage import minimum_filter1d

from . import __version__
from .engines import SAMPLE_RATE
from .render import Job, RenderError, write_atomic

TARGET_LUFS = -16.0
TRUE_PEAK_DBTP = -1.0
FADE_SECONDS = 0.005
LEAD_IN, TAIL = 0.3, 0.6  # seconds of room tone before the first and after the last line
SPLIT_GAP = 0.2  # between the pieces of one long line
DISCLOSURE = "AI-generated speech"


@dataclass
class Cue:
    line_index: int
    speaker: str
    text: str
    start: float
    end: float


@dataclass
class Programme:
    audio: np.ndarray
    cues: list[Cue]
    stems: dict[str, np.ndarray]


def assemble(job: Job, stems: bool = False) -> Programme:
    """Lay the job's finished chunks on one timeline and normalise the loudness."""
    if job.pending:
        raise RenderError(f"{len(job.pending)} chunk(s) are not rendered yet; resume the job first")
    settings, lines = job.manifest.settings, job.script.lines
    placed: list[tuple[str, int, np.ndarray]] = []  # (speaker, start sample, audio)
    cues: dict[int, Cue] = {}
    cursor, previous = _samples(LEAD_IN), None
    for chunk in job.manifest.chunks:
        line = lines[chunk.line_index]
        if previous is None:
            gap = line.pause_before
        elif previous.line_index == line.index:
            gap = SPLIT_GAP
        else:
            natural = settings.turn_gap if line.turn != lines[previous.line_index].turn else settings.line_gap
            gap = line.pause_before or natural
        cursor += _samples(gap)
        audio = _fade(job.chunk_audio(chunk))
        placed.append((chunk.speaker, cursor, audio))
        cue = cues.setdefault(line.index, Cue(line.index, line.speaker, line.text, cursor / SAMPLE_RATE, 0.0))
        cursor += audio.size
        cue.end = cursor / SAMPLE_RATE
        previous = chunk
    total = cursor + _samples(job.script.trailing_pause + TAIL)
    mix = np.zeros(total, np.float32)
    tracks = {s: np.zeros(total, np.float32) for s in job.script.speakers} if stems else {}
    for speaker, start, audio in placed:
        mix[start:start + audio.size] += audio
        if stems:
            tracks[speaker][start:start + audio.size] += audio
    gain = loudness_gain(mix)
    mix *= gain
    limiter = true_peak_limiter(mix)
    for track in tracks.values():
        track *= gain * limiter
    return Programme(mix * limiter, list(cues.values()), tracks)


def loudness_gain(audio: np.ndarray, target: float = TARGET_LUFS) -> float:
    """Linear gain that brings the integrated loudness to ``target`` LUFS (1.0 for silence)."""
    if audio.size < SAMPLE_RATE // 2 or not np.any(audio):
        return 1.0
    loudness = pyloudnorm.Meter(SAMPLE_RATE).integrated_loudness(audio.astype(np.float64))
    return 1.0 if not np.isfinite(loudness) else float(10 ** ((target - loudness) / 20))


def true_peak_limiter(audio: np.ndarray, ceiling_db: float = TRUE_PEAK_DBTP) -> np.ndarray:
    """Per-sample gain (≤ 1) keeping the 4×-oversampled true peak under ``ceiling_db``.

    The gain dips over a 5 ms window around each over-peak and recovers smoothly over 50 ms, which on
    speech is inaudible; with no peaks over the ceiling it is all ones and the audio is untouched.
    """
    ceiling = 10 ** (ceiling_db / 20) * 0.995  # a hair of margin for the meter's own interpolation
    over = np.abs(soxr.resample(audio, SAMPLE_RATE, 4 * SAMPLE_RATE)).reshape(-1)[: audio.size * 4]
    peak = np.maximum.reduceat(over, np.arange(0, over.size, 4))[: audio.size]
    need = np.minimum(1.0, ceiling / np.maximum(peak, 1e-9))
    if need.min() >= 1.0:
        return np.ones_like(audio)
    gain = minimum_filter1d(need, size=_samples(0.005) * 2 + 1)
    release = _samples(0.05)
    kernel = np.hanning(2 * release + 1)
    smooth = 1.0 - np.convolve(1.0 - gain, kernel / kernel.max(), mode="same")
    return np.clip(np.minimum(gain, smooth), 0.0, 1.0).astype(np.float32)


def export_job(job: Job, out: Path, stems: bool = False, mp3_kbps: int = 96) -> dict[str, str]:
    """Write WAV, MP3, SRT and VTT (and per-speaker stems) next to ``out``; record them in the manifest.

    ``out`` names the main file; its suffix picks which of WAV/MP3 the user asked for, but both are
    always written since the expensive part, rendering, is done.
    """
    programme = assemble(job, stems=stems)
    base = Path(out).with_suffix("")
    title = f"{base.name} ({job.manifest.job_id})"
    outputs = {
        "wav": write_wav(programme.audio, base.with_suffix(".wav")),
        "mp3": write_mp3(programme.audio, base.with_suffix(".mp3"), title, mp3_kbps),
        "srt": write_text(base.with_suffix(".srt"), to_srt(programme.cues)),
        "vtt": write_text(base.with_suffix(".vtt"), to_vtt(programme.cues)),
    }
    for speaker, track in programme.stems.items():
        outputs[f"stem:{speaker}"] = write_wav(track, base.parent / f"{base.name}.{_safe(speaker)}.wav")
    job.manifest.outputs = outputs
    job.save()
    return outputs


def write_wav(audio: np.ndarray, path: Path) -> str:
    write_atomic(path, lambda f: sf.write(f, _pcm16(audio), SAMPLE_RATE, format="WAV", subtype="PCM_16"))
    return str(path)


def write_mp3(audio: np.ndarray, path: Path, title: str, kbps: int = 96) -> str:
    """MP3 via LAME, tagged (ID3v2) with the title and an AI-generated-speech disclosure."""
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(kbps)
    encoder.set_in_sample_rate(SAMPLE_RATE)
    encoder.set_channels(1)
    encoder.set_quality(2)
    data = encoder.encode(_pcm16(audio).tobytes()) + encoder.flush()
    tags = ID3()
    tags.add(TIT2(encoding=3, text=title))
    tags.add(TPE1(encoding=3, text="VibeVoice WebUI"))
    tags.add(TSSE(encoding=3, text=f"vibevoice-webui {__version__}"))
    tags.add(COMM(encoding=3, lang="eng", desc="disclosure", text=DISCLOSURE))
    buffer = io.BytesIO(bytes(data))
    tags.save(buffer)  # mutagen prepends the ID3 header to the file object
    write_atomic(path, lambda f: f.write(buffer.getvalue()))
    return str(path)


def to_srt(cues: list[Cue]) -> str:
    blocks = [f"{i}\n{_stamp(c.start, ',')} --> {_stamp(c.end, ',')}\n[{c.speaker}] {c.text}\n"
              for i, c in enumerate(cues, 1)]
    return "\n".join(blocks)


def to_vtt(cues: list[Cue]) -> str:
    blocks = [f"{_stamp(c.start, '.')} --> {_stamp(c.end, '.')}\n<v {c.speaker}>{c.text}\n" for c in cues]
    return "WEBVTT\n\n" + "\n".join(blocks)


def write_text(path: Path, text: str) -> str:
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))
    return str(path)


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def _fade(audio: np.ndarray) -> np.ndarray:
    n = min(_samples(FADE_SECONDS), audio.size // 2)
    if n == 0:
        return audio
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))).astype(np.float32)
    audio = audio.copy()
    audio[:n] *= ramp
    audio[-n:] *= ramp[::-1]
    return audio


def _pcm16(audio: np.ndarray) -> np.ndarray:
    return np.round(np.clip(audio, -1.0, 32767 / 32768) * 32768).astype(np.int16)


def _samples(seconds: float) -> int:
    return int(round(seconds * SAMPLE_RATE))


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)

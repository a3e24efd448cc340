"""Finished chunks → one programme: pauses, click-free joins, −16 LUFS, WAV/MP3/SRT/VTT and stems.

The timeline is laid out from the script, not guessed from the audio: a natural gap when the speaker
changes, a shorter one between lines of one speaker, and exactly the silence a ``[pause]`` asks for.
Each chunk fades in and out over a few milliseconds so no join can click. Loudness follows the
podcast convention (−16 LUFS integrated, true peak ≤ −1 dBTP, EBU R128 / ITU-R BS.1770 via
pyloudnorm); a gentle look-ahead limiter catches the few peaks the gain would push over the ceiling.
Every cue in the subtitles is one script line, timed from where its audio was placed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lameenc
import numpy as np
import soxr
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from . import audit, delivery, disclosure, provenance, watermark
from .atomic import write_bytes_atomic
from .audio import SAMPLE_RATE, fade, pcm16, wav_bytes
from .audio import samples as _samples
from .errors import RenderFailed
from .job.model import ChunkRecord
from .job.runner import Job
from .provenance import Provenance

TARGET_LUFS = -16.0
TRUE_PEAK_DBTP = -1.0
LEAD_IN, TAIL = 0.3, 0.6  # seconds of room tone before the first and after the last line
SPLIT_GAP = 0.2  # between the pieces of one long line
CUE_AIR = 0.05  # seconds kept around the first and last recognised word of a cue


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


def layout(job: Job) -> tuple[list[tuple[ChunkRecord, int]], int]:
    """Where each chunk starts on the timeline (in samples) and the programme's total length.

    Gaps come from the script alone, so the start of chunk *n* is known as soon as chunks before it
    are rendered: the streaming preview and the final assembly place audio identically.
    """
    settings, lines, plans = job.manifest.settings, job.script.lines, delivery.line_plans(job.manifest.plan)
    placed: list[tuple[ChunkRecord, int]] = []
    notice = spoken_notice(job)
    room = notice.audio.size + _samples(disclosure.GAP) if notice else 0
    cursor, previous = _samples(LEAD_IN) + (room if notice and notice.where == "start" else 0), None
    for chunk in job.manifest.chunks:
        cursor += _samples(gap_before(chunk, previous, lines, settings, plans))
        placed.append((chunk, cursor))
        cursor += chunk.samples
        previous = chunk
    end_room = room if notice and notice.where == "end" else 0
    return placed, cursor + _samples(job.script.trailing_pause + TAIL) + end_room


@dataclass
class Notice:
    where: str
    start: int
    text: str
    audio: np.ndarray


def spoken_notice(job: Job, end: int | None = None) -> Notice | None:
    """The audible AI disclosure for this job, if its settings ask for one, and where it starts.

    At the start it follows the lead-in; at the end it starts ``disclosure.GAP`` after the last line
    (``end`` = where the last chunk ends; needed only for an end notice).
    """
    where = disclosure.placement(job.manifest.settings.disclosure, job.manifest.voices)
    if where is None:
        return None
    text, audio = disclosure.notice(disclosure.language(job.script))
    start = _samples(LEAD_IN) if where == "start" else (end or 0) + _samples(disclosure.GAP)
    return Notice(where, start, text, audio)


def gap_before(chunk: ChunkRecord, previous: ChunkRecord | None, lines, settings, plans=None) -> float:
    """Seconds of silence before ``chunk``: a [pause] in the script, else the plan's pause, else natural."""
    line = lines[chunk.line_index]
    if previous is None:
        return line.pause_before
    if previous.line_index == line.index:
        return SPLIT_GAP
    if line.pause_before:
        return line.pause_before
    natural = settings.turn_gap if line.turn != lines[previous.line_index].turn else settings.line_gap
    mine, theirs = (plans or {}).get(line.index), (plans or {}).get(previous.line_index)
    planned = [p for p in (mine and mine.pause_before, theirs and theirs.pause_after) if p is not None]
    return max(planned) if planned else natural


def assemble(job: Job, stems: bool = False) -> Programme:
    """Lay the job's finished chunks on one timeline and normalise the loudness."""
    if job.pending:
        raise RenderFailed(f"{len(job.pending)} chunk(s) are not rendered yet; resume the job first")
    placed, total = layout(job)
    mix = np.zeros(total, np.float32)
    tracks = {s: np.zeros(total, np.float32) for s in job.script.speakers} if stems else {}
    cues: dict[int, Cue] = {}
    last = placed[-1][1] + placed[-1][0].samples if placed else _samples(LEAD_IN)
    notice = spoken_notice(job, end=last)
    if notice:
        mix[notice.start:notice.start + notice.audio.size] += fade(notice.audio)
        cues[-1] = Cue(-1, "Notice", notice.text, notice.start / SAMPLE_RATE,
                       (notice.start + notice.audio.size) / SAMPLE_RATE)
    for chunk, start in placed:
        audio = fade(job.chunk_audio(chunk))
        mix[start:start + audio.size] += audio
        # A whole-script engine reports where each line lies inside its one chunk; else a chunk is a line.
        if stems:
            for line_index, begin, end in chunk.spans or [(chunk.line_index, 0, audio.size)]:
                tracks[job.script.lines[line_index].speaker][start + begin:start + end] += audio[begin:end]
        for line_index, begin, end in chunk.spans or [(chunk.line_index, *speech_bounds(chunk, audio.size))]:
            line = job.script.lines[line_index]
            cue = cues.setdefault(line.index, Cue(line.index, line.speaker, line.text,
                                                  (start + begin) / SAMPLE_RATE, 0))
            cue.end = (start + end) / SAMPLE_RATE
    if job.manifest.settings.watermark:
        # The mark is a fixed linear filter, so marking each stem keeps "stems sum to the mix" exact.
        mix = watermark.embed(mix)
        tracks = {speaker: watermark.embed(track) for speaker, track in tracks.items()}
    gain = normalise(mix)
    for track in tracks.values():
        track *= gain
    return Programme(mix * gain, sorted(cues.values(), key=lambda c: c.start), tracks)


def speech_bounds(chunk: ChunkRecord, size: int) -> tuple[int, int]:
    """Where speech starts and ends inside a chunk: the recogniser's first and last word when QA heard
    the take (with a little air around them), else the whole chunk."""
    if not chunk.words:
        return 0, size
    start = max(0, _samples(chunk.words[0].start - CUE_AIR))
    end = min(size, _samples(chunk.words[-1].end + CUE_AIR))
    return (start, end) if start < end else (0, size)


def loudness_gain(audio: np.ndarray, target: float = TARGET_LUFS) -> float:
    """Linear gain that brings the integrated loudness to ``target`` LUFS (1.0 for silence)."""
    if audio.size < SAMPLE_RATE // 2 or not np.any(audio):
        return 1.0
    import pyloudnorm  # imported on use: it pulls in scipy.signal, two seconds the CLI's other commands skip

    loudness = pyloudnorm.Meter(SAMPLE_RATE).integrated_loudness(audio.astype(np.float64))
    return 1.0 if not np.isfinite(loudness) else float(10 ** ((target - loudness) / 20))


def normalise(audio: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Per-sample gain bringing ``audio`` to −16 LUFS with true peak ≤ −1 dBTP.

    Gain and limiting alternate a few times: limiting the peaks lowers the loudness a little, the
    next gain restores it, and the last step is always the limiter so the ceiling holds.
    """
    total = np.ones_like(audio)
    current = audio
    for _ in range(rounds):
        step = loudness_gain(current)
        limit = true_peak_limiter(current * step)
        total *= step * limit
        current = audio * total
    return total


def true_peak_limiter(audio: np.ndarray, ceiling_db: float = TRUE_PEAK_DBTP) -> np.ndarray:
    """Per-sample gain (≤ 1) keeping the 4×-oversampled true peak under ``ceiling_db``.

    The needed gain is spread by a minimum filter over ±10 ms, then averaged over 10 ms: every average
    only contains values at or below the gain the peak needs, so the ceiling holds, and the gain moves
    smoothly (no distortion). With no peaks over the ceiling it is all ones.
    """
    ceiling = 10 ** (ceiling_db / 20) * 0.99  # a hair of margin for meters' own interpolation
    over = np.abs(soxr.resample(audio, SAMPLE_RATE, 4 * SAMPLE_RATE))[: audio.size * 4]
    peak = np.zeros(audio.size, np.float32)
    peak[: -(-over.size // 4)] = np.maximum.reduceat(over, np.arange(0, over.size, 4))
    need = np.minimum(1.0, ceiling / np.maximum(peak, 1e-9)).astype(np.float32)
    if need.min() >= 1.0:
        return np.ones_like(audio)
    window = _samples(0.010)
    held = minimum_filter1d(need, size=2 * window + 1)
    return np.minimum(uniform_filter1d(held, size=window), 1.0).astype(np.float32)


def export_job(job: Job, out: Path, stems: bool = False, mp3_kbps: int = 96) -> dict[str, str]:
    """Write WAV, MP3, FLAC, SRT and VTT (and per-speaker stems) next to ``out``; record them in the job.

    ``out`` names the main file; its suffix picks which format the user asked for, but all are always
    written since the expensive part, rendering, is done. Every audio file carries provenance tags.
    """
    programme = assemble(job, stems=stems)
    base = Path(out).with_suffix("")
    title = f"{base.name} ({job.manifest.job_id})"
    stamp = job_provenance(job)
    outputs = {
        "wav": write_wav(programme.audio, base.with_suffix(".wav"), stamp, title),
        "mp3": write_mp3(programme.audio, base.with_suffix(".mp3"), stamp, title, mp3_kbps),
        "flac": write_flac(programme.audio, base.with_suffix(".flac"), stamp, title),
        "srt": write_text(base.with_suffix(".srt"), to_srt(programme.cues)),
        "vtt": write_text(base.with_suffix(".vtt"), to_vtt(programme.cues)),
    }
    for speaker, name in stem_names(list(programme.stems)).items():
        outputs[f"stem:{speaker}"] = write_wav(programme.stems[speaker], base.parent / f"{base.name}.{name}.wav",
                                               stamp, f"{title} — {speaker}")
    job.manifest.outputs = outputs
    job.manifest.status, job.manifest.message = "done", None
    job.save()
    audit.record("job.exported", job_id=job.manifest.job_id, seconds=round(programme.audio.size / SAMPLE_RATE, 2),
                 outputs=sorted(outputs), provenance=stamp.model_dump())
    return outputs


def job_provenance(job: Job) -> Provenance:
    m = job.manifest
    voices = m.voices.values()
    engine = m.settings.engine if m.settings.engine != "voices" else "+".join(sorted({v.engine for v in voices}))
    return Provenance(engine=engine, job_id=m.job_id, cloned_voice=any(v.spec.kind == "clone" for v in voices),
                      watermark=watermark.METHOD if m.settings.watermark else None)


def write_wav(audio: np.ndarray, path: Path, stamp: Provenance, title: str) -> str:
    data = wav_bytes(pcm16(audio), strings=provenance.info_strings(stamp, title))
    write_bytes_atomic(path, provenance.tag_wav(data, stamp, title))
    return str(path)


def write_flac(audio: np.ndarray, path: Path, stamp: Provenance, title: str) -> str:
    data = wav_bytes(pcm16(audio), strings=provenance.info_strings(stamp, title), container="FLAC")
    write_bytes_atomic(path, provenance.tag_flac(data, stamp, title))
    return str(path)


def write_mp3(audio: np.ndarray, path: Path, stamp: Provenance, title: str, kbps: int = 96) -> str:
    """MP3 via LAME, tagged (ID3v2) with the title and the provenance fields."""
    encoder = mp3_encoder(kbps)
    data = encoder.encode(pcm16(audio).tobytes()) + encoder.flush()
    write_bytes_atomic(path, provenance.tag_mp3(bytes(data), stamp, title))
    return str(path)


def mp3_encoder(kbps: int = 96) -> lameenc.Encoder:
    """A LAME encoder for the programme's format (24 kHz mono); feed it 16-bit PCM bytes."""
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(kbps)
    encoder.set_in_sample_rate(SAMPLE_RATE)
    encoder.set_channels(1)
    encoder.set_quality(2)
    return encoder


def to_srt(cues: list[Cue]) -> str:
    blocks = [f"{i}\n{_stamp(c.start, ',')} --> {_stamp(c.end, ',')}\n[{c.speaker}] {c.text}\n"
              for i, c in enumerate(cues, 1)]
    return "\n".join(blocks)


def to_vtt(cues: list[Cue]) -> str:
    blocks = [f"{_stamp(c.start, '.')} --> {_stamp(c.end, '.')}\n<v {c.speaker}>{c.text}\n" for c in cues]
    return "WEBVTT\n\n" + "\n".join(blocks)


def write_text(path: Path, text: str) -> str:
    write_bytes_atomic(path, text.encode("utf-8"))
    return str(path)


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def stem_names(speakers: list[str]) -> dict[str, str]:
    """A distinct file-name part per speaker: "Dr. Lee" and "Dr_ Lee" must not write one file."""
    names: dict[str, str] = {}
    for speaker in speakers:
        base = _safe(speaker)[:60] or "speaker"
        name, n = base, 1
        while name.casefold() in {v.casefold() for v in names.values()}:
            n += 1
            name = f"{base}-{n}"
        names[speaker] = name
    return names


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)

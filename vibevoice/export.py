"""Finished chunks → one programme: pauses, click-free joins, −16 LUFS, WAV/MP3/SRT/VTT and stems.

The timeline is laid out from the script, not guessed from the audio: a natural gap when the speaker
changes, a shorter one between lines of one speaker, and exactly the silence a ``[pause]`` asks for.
Each chunk fades in and out over a few milliseconds so no join can click. Loudness follows the
podcast convention (−16 LUFS integrated, true peak ≤ −1 dBTP, EBU R128 / ITU-R BS.1770 via
pyloudnorm); a gentle look-ahead limiter catches the few peaks the gain would push over the ceiling.
Every cue in the subtitles is one script line, timed from where its audio was placed.

``export_job`` streams: the timeline is read range by range from the chunk files (``Timeline``), marked
(``watermark.Marker``), measured (``loudness.LoudnessMeter``, block-wise BS.1770), limited and encoded
``BLOCK`` samples at a time, so its memory does not grow with the programme's length. Each of the
normalisation's rounds is one pass over the timeline; the last pass writes every file at once.
``assemble`` is the same programme in memory (for QA on short jobs, and as the tests' reference).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import lameenc
import numpy as np
import soundfile as sf
import soxr
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from . import audit, delivery, disclosure, provenance, watermark
from .atomic import open_atomic, write_bytes_atomic
from .audio import FADE_SECONDS, SAMPLE_RATE, fade, pcm16, wav_bytes
from .audio import samples as _samples
from .errors import RenderFailed
from .job.model import ChunkRecord
from .job.runner import Job
from .loudness import LoudnessMeter, integrated_loudness
from .provenance import Provenance

TARGET_LUFS = -16.0
TRUE_PEAK_DBTP = -1.0
LEAD_IN, TAIL = 0.3, 0.6  # seconds of room tone before the first and after the last line
SPLIT_GAP = 0.2  # between the pieces of one long line
CUE_AIR = 0.05  # seconds kept around the first and last recognised word of a cue
BLOCK = int(watermark.BLOCK_SECONDS * SAMPLE_RATE)  # samples per streamed block (30 s, 2.9 MB as float32)
LIMITER_REACH = 1200  # samples a limiter round looks either side (10 ms min + 10 ms mean + the resampler)


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
    """The whole programme in memory: the finished chunks on one timeline, marked and normalised.

    ``export_job`` writes the same programme without holding it (``stream_programme``)."""
    if job.pending:
        raise RenderFailed(f"{len(job.pending)} chunk(s) are not rendered yet; resume the job first")
    placed, total = layout(job)
    mix = np.zeros(total, np.float32)
    tracks = {s: np.zeros(total, np.float32) for s in job.script.speakers} if stems else {}
    notice = _notice(job, placed)
    if notice:
        mix[notice.start:notice.start + notice.audio.size] += fade(notice.audio)
    for chunk, start in placed:
        audio = fade(job.chunk_audio(chunk))
        mix[start:start + audio.size] += audio
        # A whole-script engine reports where each line lies inside its one chunk; else a chunk is a line.
        if stems:
            for line_index, begin, end in chunk.spans or [(chunk.line_index, 0, audio.size)]:
                tracks[job.script.lines[line_index].speaker][start + begin:start + end] += audio[begin:end]
    if job.manifest.settings.watermark:
        # The mark is a fixed linear filter, so marking each stem keeps "stems sum to the mix" exact.
        mix = watermark.embed(mix)
        tracks = {speaker: watermark.embed(track) for speaker, track in tracks.items()}
    gain = normalise(mix)
    for track in tracks.values():
        track *= gain
    return Programme(mix * gain, programme_cues(job, placed, notice), tracks)


def _notice(job: Job, placed: list[tuple[ChunkRecord, int]]) -> Notice | None:
    last = placed[-1][1] + placed[-1][0].samples if placed else _samples(LEAD_IN)
    return spoken_notice(job, end=last)


def programme_cues(job: Job, placed: list[tuple[ChunkRecord, int]], notice: Notice | None) -> list[Cue]:
    """One cue per script line (and the spoken notice), timed from where its audio lies; no audio read."""
    cues: dict[int, Cue] = {}
    if notice:
        cues[-1] = Cue(-1, "Notice", notice.text, notice.start / SAMPLE_RATE,
                       (notice.start + notice.audio.size) / SAMPLE_RATE)
    for chunk, start in placed:
        for line_index, begin, end in chunk.spans or [(chunk.line_index, *speech_bounds(chunk, chunk.samples))]:
            line = job.script.lines[line_index]
            cue = cues.setdefault(line.index, Cue(line.index, line.speaker, line.text,
                                                  (start + begin) / SAMPLE_RATE, 0))
            cue.end = (start + end) / SAMPLE_RATE
    return sorted(cues.values(), key=lambda c: c.start)


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
    return _gain_to(integrated_loudness(audio, SAMPLE_RATE), target)


def _gain_to(loudness: float, target: float = TARGET_LUFS) -> float:
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
    The audio is streamed (``stream_programme``): memory stays flat however long the programme.
    """
    if job.pending:
        raise RenderFailed(f"{len(job.pending)} chunk(s) are not rendered yet; resume the job first")
    base = Path(out).with_suffix("")
    title = f"{base.name} ({job.manifest.job_id})"
    stamp = job_provenance(job)
    timeline = Timeline(job)
    paths = {"wav": base.with_suffix(".wav"), "mp3": base.with_suffix(".mp3"), "flac": base.with_suffix(".flac")}
    speakers = stem_names(job.script.speakers) if stems else {}
    paths |= {f"stem:{speaker}": base.parent / f"{base.name}.{name}.wav" for speaker, name in speakers.items()}
    with ExitStack() as files:
        sinks = {kind: _sink(kind, files.enter_context(open_atomic(path)), timeline.total, stamp,
                             f"{title} — {kind[5:]}" if kind.startswith("stem:") else title, mp3_kbps)
                 for kind, path in paths.items()}
        stream_programme(timeline, sinks, list(speakers), job.manifest.settings.watermark)
    outputs = {kind: str(path) for kind, path in paths.items()}
    cues = programme_cues(job, timeline.placed, timeline.notice)
    outputs |= {"srt": write_text(base.with_suffix(".srt"), to_srt(cues)),
                "vtt": write_text(base.with_suffix(".vtt"), to_vtt(cues))}
    job.manifest.outputs = {k: outputs[k] for k in ("wav", "mp3", "flac", "srt", "vtt", *paths) if k in outputs}
    job.manifest.status, job.manifest.message = "done", None
    job.save()
    audit.record("job.exported", job_id=job.manifest.job_id, seconds=round(timeline.total / SAMPLE_RATE, 2),
                 outputs=sorted(outputs), provenance=stamp.model_dump())
    return job.manifest.outputs


class Timeline:
    """The programme before the mark and the gain, read range by range from the chunk files: the mix
    (``read``), or one speaker's stem; zeros outside the programme. Holds no audio of its own."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.placed, self.total = layout(job)
        self.notice = _notice(job, self.placed)
        self._starts = np.array([start for _, start in self.placed], np.int64)
        self._ends = self._starts + np.array([c.samples for c, _ in self.placed], np.int64)

    def read(self, lo: int, hi: int, speaker: str | None = None) -> np.ndarray:
        out = np.zeros(hi - lo, np.float32)
        n = self.notice
        if n and speaker is None and n.start < hi and n.start + n.audio.size > lo:
            a, z = max(lo, n.start), min(hi, n.start + n.audio.size)
            out[a - lo:z - lo] += fade(n.audio)[a - n.start:z - n.start]
        lines = self.job.script.lines
        for i in np.flatnonzero((self._starts < hi) & (self._ends > lo)):
            chunk, start = self.placed[i]
            spans = chunk.spans or [(chunk.line_index, 0, chunk.samples)] if speaker else [(None, 0, chunk.samples)]
            for line_index, begin, end in spans:
                a, z = max(lo, start + begin), min(hi, start + end)
                if a < z and (speaker is None or lines[line_index].speaker == speaker):
                    out[a - lo:z - lo] += self._piece(chunk, a - start, z - start)
        return out

    def _piece(self, chunk: ChunkRecord, a: int, z: int) -> np.ndarray:
        """Samples ``a:z`` of a chunk, faded as ``fade`` fades the whole chunk."""
        with sf.SoundFile(self.job.dir / chunk.file) as f:
            if f.samplerate != SAMPLE_RATE or f.frames != chunk.samples:
                raise RenderFailed(f"chunk file {chunk.file} is damaged; delete it and resume to re-render it")
            f.seek(a)
            piece = f.read(z - a, dtype="float32")
        n = min(_samples(FADE_SECONDS), chunk.samples // 2)
        if n and (a < n or z > chunk.samples - n):
            ramp = (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))).astype(np.float32)
            envelope = np.ones(z - a, np.float32)
            head = np.arange(a, min(z, n))
            envelope[head - a] = ramp[head]
            tail = np.arange(max(a, chunk.samples - n), z)
            envelope[tail - a] *= ramp[::-1][tail - (chunk.samples - n)]
            piece = piece * envelope
        return piece


def stream_programme(timeline: Timeline, sinks: dict, speakers: list[str], mark: bool, rounds: int = 3) -> None:
    """Measure, then write, the programme ``BLOCK`` samples at a time: the same gain as ``normalise``
    (``rounds`` of loudness gain and true-peak limiting), each round's loudness one pass over the timeline."""
    def marked(read):
        return watermark.Marker(read, timeline.total) if mark else read

    mix = marked(timeline.read)
    steps: list[float] = []
    for _ in range(rounds):
        meter = LoudnessMeter(SAMPLE_RATE)
        for lo in range(0, timeline.total, BLOCK):
            audio, gain = _block_gain(mix, lo, min(lo + BLOCK, timeline.total), steps)
            meter.add(audio * gain)
        short = timeline.total < SAMPLE_RATE // 2
        steps.append(1.0 if short else _gain_to(meter.integrated()))
    stems = {s: marked(lambda lo, hi, s=s: timeline.read(lo, hi, s)) for s in speakers}
    for lo in range(0, timeline.total, BLOCK):
        hi = min(lo + BLOCK, timeline.total)
        audio, gain = _block_gain(mix, lo, hi, steps)
        pcm = pcm16(audio * gain)
        for kind, sink in sinks.items():
            if not kind.startswith("stem:"):
                sink.write(pcm)
        for speaker, read in stems.items():
            sinks[f"stem:{speaker}"].write(pcm16(read(lo, hi) * gain))
    for sink in sinks.values():
        sink.close()


def _block_gain(read, lo: int, hi: int, steps: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """``read(lo, hi)`` and ``normalise``'s gain over it for the loudness ``steps`` measured so far;
    each limiter round is run with ``LIMITER_REACH`` of context that is then dropped."""
    reach = LIMITER_REACH * len(steps)
    audio = read(lo - reach, hi + reach)
    total, current = np.ones_like(audio), audio
    for step in steps:
        total *= step * true_peak_limiter(current * step)
        current = audio * total
    return audio[reach:reach + hi - lo], total[reach:reach + hi - lo]


def _sink(kind: str, f, frames: int, stamp: Provenance, title: str, mp3_kbps: int):
    if kind == "mp3":
        return Mp3Sink(f, stamp, title, mp3_kbps)
    if kind == "flac":
        return FlacSink(f, stamp, title)
    return WavSink(f, frames, stamp, title)


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


class WavSink:
    """16-bit WAV written block by block, byte for byte what ``write_wav`` writes in one piece: the
    header and tags come from a two-sample file made the same way, with its sizes set for ``frames``."""

    def __init__(self, f, frames: int, stamp: Provenance, title: str) -> None:
        template = provenance.tag_wav(wav_bytes(np.zeros(2, np.int16), strings=provenance.info_strings(stamp, title)),
                                      stamp, title)
        data = _riff_chunk(template, b"data")
        head, self._tail = bytearray(template[:data + 8]), template[data + 12:]
        head[4:8] = (len(head) + len(self._tail) + 2 * frames - 8).to_bytes(4, "little")
        head[data + 4:data + 8] = (2 * frames).to_bytes(4, "little")
        self.f, self.left = f, frames
        f.write(bytes(head))

    def write(self, pcm: np.ndarray) -> None:
        self.left -= pcm.size
        self.f.write(pcm.astype("<i2").tobytes())

    def close(self) -> None:
        if self.left:
            raise RenderFailed(f"the WAV's header promised {self.left} more samples than were written")
        self.f.write(self._tail)


def _riff_chunk(data: bytes, name: bytes) -> int:
    """Offset of the RIFF chunk ``name`` in a WAV file's bytes."""
    at = 12
    while at + 8 <= len(data):
        if data[at:at + 4] == name:
            return at
        at += 8 + int.from_bytes(data[at + 4:at + 8], "little")
        at += at % 2
    raise RenderFailed(f"no {name!r} chunk in the WAV template")


class Mp3Sink:
    """MP3 by LAME, encoded block by block behind the same ID3v2 tag ``write_mp3`` prepends."""

    def __init__(self, f, stamp: Provenance, title: str, kbps: int = 96) -> None:
        self.f, self.encoder = f, mp3_encoder(kbps)
        f.write(provenance.tag_mp3(b"", stamp, title))

    def write(self, pcm: np.ndarray) -> None:
        self.f.write(bytes(self.encoder.encode(pcm.astype("<i2").tobytes())))

    def close(self) -> None:
        self.f.write(bytes(self.encoder.flush()))


class FlacSink:
    """FLAC by libsndfile, block by block, then tagged in place. libsndfile swallows errors raised by
    the file it writes to, so ``_Reporting`` keeps the first one (a full disk) and ``close`` raises it."""

    def __init__(self, f, stamp: Provenance, title: str) -> None:
        self.f, self.stamp, self.title = _Reporting(f), stamp, title
        self.out = sf.SoundFile(self.f, "w", SAMPLE_RATE, 1, "PCM_16", format="FLAC")
        for key, value in provenance.info_strings(stamp, title).items():
            setattr(self.out, key, value)

    def write(self, pcm: np.ndarray) -> None:
        try:
            self.out.write(pcm)
        except AssertionError:  # soundfile asserts when libsndfile wrote less than it was given
            self.f.check()
            raise RenderFailed("the FLAC encoder wrote less audio than it was given") from None
        self.f.check()

    def close(self) -> None:
        try:
            self.out.close()
        finally:
            self.f.check()
        self.f.raw.seek(0)
        provenance.tag_flac_file(self.f.raw, self.stamp, self.title)


class _Reporting:
    """A file for libsndfile that remembers the first ``OSError`` its writes raised."""

    def __init__(self, raw) -> None:
        self.raw, self.error = raw, None

    def write(self, data) -> int:
        try:
            return self.raw.write(data)
        except OSError as error:
            self.error = self.error or error
            return 0

    def read(self, n: int = -1) -> bytes:
        return self.raw.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def check(self) -> None:
        if self.error is not None:
            raise self.error


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

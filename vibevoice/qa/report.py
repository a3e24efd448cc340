"""Every metric over a finished job: one row per script line, summaries per speaker and overall.

A line is scored on its own audio: its chunk (or its chunks, joined, for a long line split in
pieces), or its span inside the single chunk of a whole-script engine, read when it is scored. Seams
and true peak are measured on the exported WAV, where joins and the limiter are, block by block, so
a 90-minute report needs no more memory than a short one. Each metric can be left out
(``metrics=``) and the time every metric took is kept, so the cost of a check is visible too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import soundfile as sf
from pydantic import BaseModel, Field

from ..audio import SAMPLE_RATE
from ..errors import BadInput, Conflict
from ..job.model import ChunkRecord
from ..job.runner import Job
from . import gate, loudness
from .seams import Seam

METRICS = ("intelligibility", "speakers", "mos", "loudness", "seams")


class LineRow(BaseModel):
    index: int
    source_line: int
    speaker: str
    voice: str
    language: str
    text: str
    seconds: float
    transcript: str | None = None
    unit: str | None = None  # "wer" or "cer"
    error_rate: float | None = None
    substitutions: int | None = None
    deletions: int | None = None
    insertions: int | None = None
    reference_length: int | None = None
    similarity: float | None = None  # to the speaker's voice reference
    closest: str | None = None
    margin: float | None = None
    drift: float | None = None  # similarity to the speaker's first lines
    mos: float | None = None
    rate: float | None = None  # words/s (en) or syllables/s (zh)
    rate_vs_plan: float | None = None
    lufs: float | None = None


class Summary(BaseModel):
    lines: int
    seconds: float
    wer: float | None = None  # English lines: errors / reference words
    cer: float | None = None  # Mandarin lines: errors / reference characters
    attribution_accuracy: float | None = None
    mean_margin: float | None = None
    min_margin: float | None = None
    mean_similarity: float | None = None
    mean_drift: float | None = None
    min_drift: float | None = None
    mos: float | None = None
    rate: float | None = None
    lufs: float | None = None


class SpeakerSummary(Summary):
    speaker: str
    voice: str
    engine: str


class JobReport(BaseModel):
    job_dir: str
    job_id: str
    engine: str
    metrics: list[str]
    lines: list[LineRow]
    speakers: list[SpeakerSummary]
    overall: Summary
    loudness_spread: float | None = None  # LU between the loudest and quietest speaker
    true_peak_db: float | None = None  # of the programme
    seams: list[Seam] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict, description="seconds spent per metric")
    retakes: list[str] = Field(default_factory=list, description="what automatic QA re-rendered while rendering, and why")

    def to_markdown(self) -> str:
        """Summary per speaker, seams, then one row per line (GitHub-flavoured Markdown)."""
        out = [f"## Job {self.job_id} ({self.engine})", "",
               (f"{self.overall.lines} lines, {self.overall.seconds:.0f} s of speech; programme true peak "
               f"{number(self.true_peak_db)} dBTP, loudness spread between speakers {number(self.loudness_spread)} LU."), ""]
        out += table(["speaker", "voice", "lines", "WER", "CER", "attribution", "margin (mean/min)", "similarity",
                      "drift (mean/min)", "MOS", "rate", "LUFS"],
                     [[s.speaker, s.voice, s.lines, percent(s.wer), percent(s.cer), percent(s.attribution_accuracy),
                       f"{number(s.mean_margin)} / {number(s.min_margin)}", number(s.mean_similarity),
                       f"{number(s.mean_drift)} / {number(s.min_drift)}", number(s.mos), number(s.rate), number(s.lufs)]
                      for s in [*self.speakers, SpeakerSummary(speaker="**all**", voice="", engine="",
                                                               **self.overall.model_dump())]])
        seams = [f"- {s.kind} at {s.time:.2f} s: {s.detail}" for s in self.seams] or ["- none found"]
        out += ["", "Seams:", *seams]
        if self.retakes:
            out += ["", "Re-rendered by automatic QA:", *[f"- {r}" for r in self.retakes]]
        out += ["", "Lines:", ""]
        out += table(["#", "speaker", "err", "closest", "margin", "MOS", "rate", "LUFS", "text", "heard"],
                     [[r.source_line, r.speaker, percent(r.error_rate), r.closest or "–", number(r.margin), number(r.mos),
                       number(r.rate), number(r.lufs), _clip(r.text), _clip(r.transcript or "")] for r in self.lines])
        return "\n".join(out) + "\n"


def score_job(job_dir: Path, metrics: tuple[str, ...] | list[str] = METRICS,
              progress: Callable[[str, int, int], None] | None = None) -> JobReport:
    """Score the finished job in ``job_dir``; raises ``Conflict`` when there is no finished job."""
    job = Job.open(Path(job_dir))
    if job.pending:
        raise Conflict(f"{job_dir}: {len(job.pending)} chunk(s) are not rendered yet; finish the job first")
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise BadInput(f"unknown metric(s) {', '.join(sorted(unknown))}; choose from {', '.join(METRICS)}")
    lines, audio = job.script.lines, line_audio(job)
    voices = job.manifest.voices
    rows = [LineRow(index=ln.index, source_line=ln.source_line, speaker=ln.speaker, voice=voices[ln.speaker].id,
                    language=ln.language, text=ln.text, seconds=round(audio[ln.index].size / SAMPLE_RATE, 2))
            for ln in lines]
    timings: dict[str, float] = {}
    extra: dict = {}
    for metric in metrics:
        started = time.monotonic()
        extra.update(_SCORERS[metric](job, rows, audio, progress or (lambda *_: None)) or {})
        timings[metric] = round(time.monotonic() - started, 2)
    speakers = [SpeakerSummary(speaker=s, voice=voices[s].id, engine=_engine(job, s),
                               **_summary([r for r in rows if r.speaker == s]).model_dump()) for s in job.script.speakers]
    return JobReport(job_dir=str(job_dir), job_id=job.manifest.job_id, engine=job.manifest.settings.engine,
                     metrics=list(metrics), lines=rows, speakers=speakers, overall=_summary(rows), timings=timings,
                     retakes=gate.summary(job.manifest.chunks), **extra)


class LineAudio(Mapping):
    """Each script line's own audio, read from its chunk files when asked for (never all at once: the
    lines of a 90-minute programme are 0.5 GB of float32): its chunks joined with 0.2 s between them,
    or its span in a whole-script chunk."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.pieces: dict[int, list[tuple[ChunkRecord, int | None, int | None]]] = {}
        for chunk in job.manifest.chunks:
            for line_index, start, end in chunk.spans or [(chunk.line_index, None, None)]:
                self.pieces.setdefault(line_index, []).append((chunk, start, end))

    def __getitem__(self, index: int) -> np.ndarray:
        parts = [self.job.chunk_audio(chunk)[start:end] for chunk, start, end in self.pieces.get(index, [])]
        gap = np.zeros(int(0.2 * SAMPLE_RATE), np.float32)
        return np.concatenate([p for part in parts for p in (part, gap)][:-1] or [np.zeros(0, np.float32)])

    def __iter__(self) -> Iterator[int]:
        return iter(line.index for line in self.job.script.lines)

    def __len__(self) -> int:
        return len(self.job.script.lines)


def line_audio(job: Job) -> LineAudio:
    return LineAudio(job)


def _intelligibility(job, rows, audio, progress) -> None:
    from .intelligibility import score_line

    for i, row in enumerate(rows):
        progress("intelligibility", i, len(rows))
        if audio[row.index].size:
            scored, heard = score_line(audio[row.index], SAMPLE_RATE, row.text, row.language)
            row.transcript, row.unit, row.error_rate = heard, scored.unit, round(scored.error_rate, 4)
            row.substitutions, row.deletions, row.insertions = scored.substitutions, scored.deletions, scored.insertions
            row.reference_length = scored.reference_length


def _speakers(job, rows, audio, progress) -> None:
    from . import speakers

    lines = job.script.lines
    references = {s: speakers.voice_reference(v, _language(job, s)) for s, v in job.manifest.voices.items()}
    embeddings = []
    for i, row in enumerate(rows):
        progress("speakers", i, len(rows))
        embeddings.append(speakers.embed(audio[row.index], SAMPLE_RATE))
    found = speakers.attribution(embeddings, [ln.speaker for ln in lines], references)
    for row, attribution, drift in zip(rows, found, speakers.drift(embeddings, [ln.speaker for ln in lines])):
        row.similarity, row.closest, row.drift = attribution.similarity, attribution.closest, drift
        row.margin = attribution.margin if len(references) > 1 else None


def _mos(job, rows, audio, progress) -> None:
    from .mos import mos

    for i, row in enumerate(rows):
        progress("mos", i, len(rows))
        row.mos = mos(audio[row.index], SAMPLE_RATE) if audio[row.index].size else None


def _loudness(job, rows, audio, progress) -> dict:
    from .. import delivery

    plans = delivery.line_plans(job.manifest.plan)
    for row in rows:
        row.lufs = loudness.lufs(audio[row.index], SAMPLE_RATE)
        row.rate = loudness.speaking_rate(audio[row.index], SAMPLE_RATE, row.text, row.language)
    factors = [plans[r.index].rate if r.index in plans else 1.0 for r in rows]
    for row, ratio in zip(rows, loudness.rate_vs_plan([r.rate for r in rows], [r.speaker for r in rows], factors)):
        row.rate_vs_plan = ratio
    per_speaker = loudness.speaker_loudness((audio[r.index] for r in rows), [r.speaker for r in rows], SAMPLE_RATE)
    return {"loudness_spread": loudness.spread(per_speaker)}


def _seams(job, rows, audio, progress) -> dict:
    """Seams and true peak of the exported WAV (what the listener gets), read in blocks; a job that was
    never exported is assembled in memory instead."""
    from .seams import job_joins

    joins, planned = job_joins(job)
    wav = job.manifest.outputs.get("wav")
    path = job.dir / wav if wav else None
    if path is None or not path.is_file() or sf.info(str(path)).frames != planned[-1][1]:  # none, or stale
        from ..export import assemble

        programme = assemble(job).audio
        return _programme_seams(lambda lo, hi: programme[lo:hi], programme.size, joins, planned)
    with sf.SoundFile(str(path)) as f:
        def read(lo: int, hi: int) -> np.ndarray:
            f.seek(lo)
            return f.read(hi - lo, dtype="float32", always_2d=True)[:, 0]

        return _programme_seams(read, f.frames, joins, planned)


def _programme_seams(read, total: int, joins, planned) -> dict:
    from .seams import find_seams_streamed

    return {"seams": find_seams_streamed(read, total, joins, planned, SAMPLE_RATE),
            "true_peak_db": loudness.true_peak_db_streamed(read, total, SAMPLE_RATE)}


_SCORERS = {"intelligibility": _intelligibility, "speakers": _speakers, "mos": _mos, "loudness": _loudness,
            "seams": _seams}


def _summary(rows: list[LineRow]) -> Summary:
    def mean(values) -> float | None:
        values = [v for v in values if v is not None]
        return round(float(np.mean(values)), 4) if values else None

    def rate(unit: str) -> float | None:
        scored = [r for r in rows if r.unit == unit and r.reference_length]
        errors = sum(r.substitutions + r.deletions + r.insertions for r in scored)
        return round(errors / sum(r.reference_length for r in scored), 4) if scored else None

    attributed = [r for r in rows if r.closest is not None]
    margins = [r.margin for r in rows if r.margin is not None]
    drifts = [r.drift for r in rows if r.drift is not None]
    return Summary(
        lines=len(rows), seconds=round(sum(r.seconds for r in rows), 2), wer=rate("wer"), cer=rate("cer"),
        attribution_accuracy=round(sum(r.closest == r.speaker for r in attributed) / len(attributed), 4)
        if attributed else None,
        mean_margin=mean(margins), min_margin=min(margins) if margins else None,
        mean_similarity=mean(r.similarity for r in rows), mean_drift=mean(drifts),
        min_drift=min(drifts) if drifts else None, mos=mean(r.mos for r in rows),
        rate=mean(r.rate for r in rows), lufs=mean(r.lufs for r in rows))


def _engine(job: Job, speaker: str) -> str:
    return job.manifest.voices[speaker].engine if job.manifest.settings.engine == "voices" else job.manifest.settings.engine


def _language(job: Job, speaker: str) -> str:
    """The language a speaker's reference is rendered in: that of their first line (mixed → en)."""
    first = next(ln.language for ln in job.script.lines if ln.speaker == speaker)
    return "zh" if first == "zh" else "en"


def table(header: list[str], rows: list[list]) -> list[str]:
    """Markdown table lines."""
    cells = [header, ["---"] * len(header), *[[str(c).replace("|", "\\|") for c in row] for row in rows]]
    return ["| " + " | ".join(map(str, row)) + " |" for row in cells]


def number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"

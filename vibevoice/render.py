"""The long-form renderer: a job directory that survives Ctrl-C, SIGKILL, a full disk and edits.

A job is a script, a voice per speaker and settings. It is cut into chunks (a script line, or a
sentence group of a long line); every finished chunk is written atomically to ``chunks/`` and recorded
in ``job.json`` before the next one starts, so at any moment the directory holds everything rendered
so far. A chunk's file name is a hash of what determines its audio (engine version, voice, text,
speed), so re-running a job skips finished chunks and editing one line re-renders only that line.

Layout of a job directory::

    job.json          the manifest (script, voices, settings, chunk list with status)
    chunks/<key>.wav  finished chunks, float32 mono 24 kHz
    state/            carried engine state, for stateful engines
    out/              exports written by ``export``
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
from pydantic import BaseModel, Field

from . import __version__, audit, delivery, disclosure, retake
from .atomic import is_disk_full, write_bytes_atomic
from .cloning import require_consent
from .content_filter import ContentBlocked, Finding, enforce
from .content_filter import Mode as FilterMode
from .content_filter import default_mode as default_filter_mode
from .disclosure import Placement
from .engines import SAMPLE_RATE, Segment, get_engine
from .engines.base import split_text
from .plan.schema import Plan
from .retake import Take, TimedWord
from .script import Script, parse_script
from .voices import VoiceTemplate

MANIFEST = "job.json"


class RenderSettings(BaseModel):
    speed: float = Field(default=1.0, ge=0.5, le=2.0, description="multiplies every voice's own speed")
    seed: int = Field(default=0, description="for engines that sample; Kokoro is deterministic")
    turn_gap: float = Field(default=0.45, ge=0, le=5, description="seconds of silence when the speaker changes")
    line_gap: float = Field(default=0.25, ge=0, le=5, description="seconds between lines of one speaker")
    # "voices": each speaker's template picks its engine (Kokoro, Piper); "vibevoice": the whole script
    # is one VibeVoice generation from the checkpoint in ``model_dir``, speakers cloned from their voices.
    engine: Literal["voices", "vibevoice"] = "voices"
    model_dir: str | None = Field(default=None, description="VibeVoice checkpoint (default: $VIBEVOICE_MODEL_DIR)")
    # Generation controls of sampling/diffusion engines (VibeVoice); the embedded engine ignores them.
    cfg_scale: float = Field(default=1.3, ge=1.0, le=5.0, description="classifier-free guidance scale")
    diffusion_steps: int = Field(default=10, ge=1, le=100)
    max_minutes: float = Field(default=90.0, gt=0, le=90.0, description="stop generating after this much audio")
    qa: bool = Field(default=False, description="hear every take (Whisper, speaker encoder) and re-render failures")
    qa_retakes: int = Field(default=2, ge=0, le=5, description="re-renders allowed per failing chunk")
    watermark: bool = Field(default=True, description="embed the inaudible watermark (`vibevoice detect` finds it)")
    disclosure: Placement = Field(default="auto", description="spoken AI notice: auto = at the start when a "
                                  "voice is cloned; start, end or off")
    content_review: bool = Field(default=False, description="also ask the director's LLM endpoint "
                                 "($VIBEVOICE_PLANNER_URL) to review the script")
    content_filter: FilterMode = Field(default_factory=default_filter_mode,
                                       description="block severe lines and flag the rest, flag only, or off")


class ChunkRecord(BaseModel):
    index: int
    key: str
    line_index: int
    speaker: str
    text: str
    speed: float = 1.0
    emotion: str | None = None  # the plan's emotion, when the voice has a variant for it
    status: Literal["pending", "done", "failed"] = "pending"
    samples: int = 0
    render_seconds: float = 0.0
    error: str | None = None
    # For a whole-script engine: (line_index, start, end) of every line inside this chunk's audio.
    spans: list[tuple[int, int, int]] = Field(default_factory=list)
    takes: list[Take] = Field(default_factory=list, description="QA scores of every take (render --qa)")
    words: list[TimedWord] = Field(default_factory=list, description="recognised words of the kept take")

    @property
    def file(self) -> str:
        return f"chunks/{self.key}.wav"


class Manifest(BaseModel):
    format: int = 1
    job_id: str
    tool: str = f"vibevoice-webui {__version__}"
    requested_by: str | None = Field(default=None, description="who created the job (for the local audit log)")
    created: str
    updated: str
    # rendered = every chunk on disk; done = exported too (``export.export_job`` sets it).
    status: Literal["pending", "queued", "rendering", "rendered", "done", "interrupted", "failed"] = "pending"
    title: str = ""
    message: str | None = None
    script: str
    voices: dict[str, VoiceTemplate]
    settings: RenderSettings
    plan: Plan | None = None
    planner: str | None = Field(default=None, description="director to run before rendering (None: plan is final)")
    speaker_hints: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list, description="plan requests the engines cannot honour")
    content_flags: list[Finding] = Field(default_factory=list, description="lines the content filter flagged")
    chunks: list[ChunkRecord]
    outputs: dict[str, str] = Field(default_factory=dict)


@dataclass
class Progress:
    done: int
    total: int
    audio_seconds: float
    elapsed: float
    eta: float | None
    line_index: int | None
    speaker: str | None
    text: str | None


def clock(seconds: float) -> str:
    """``75`` → ``1:15``; ``3725`` → ``1:02:05`` (for progress, ETAs and estimates)."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class RenderError(RuntimeError):
    """A render stopped; the job directory is intact and ``--resume`` continues it."""


class Job:
    def __init__(self, directory: Path, manifest: Manifest) -> None:
        self._progress: Callable[[Progress], None] | None = None
        self._refs: dict[str, np.ndarray] | None = None
        self.dir = Path(directory)
        self.manifest = manifest
        self.script: Script = parse_script(manifest.script)

    # -- creating and opening ------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, script_text: str, voices: dict[str, VoiceTemplate],
               settings: RenderSettings | None = None, plan: Plan | None = None, actor: str | None = None,
               job_id: str | None = None) -> "Job":
        """Start a job, or update the one already in ``directory`` keeping every finished chunk.

        Before anything is written: every voice must suit its engine, cloned voices must carry a
        consent record, and the content filter must not block the script. ``actor`` (who asked, for
        the audit log) defaults to whoever created the job, else the local user. ``job_id`` names a new
        job (default: random); an existing job keeps its id.
        """
        directory = Path(directory)
        settings = settings or RenderSettings()
        script = parse_script(script_text)
        old = cls.open(directory).manifest if (directory / MANIFEST).exists() else None
        actor = actor or (old.requested_by if old else None) or audit.local_actor()
        trail = dict(actor=actor, job_id=old.job_id if old else None, script_sha256=audit.script_hash(script_text),
                     lines=len(script.lines), voices=audit.voice_summary(voices), engine=settings.engine,
                     content_filter=settings.content_filter)
        flags = admit(script, script_text, voices, settings, old, trail)
        now = _now()
        chunks = plan_chunks(script, voices, settings, plan)
        done = {c.key: c for c in old.chunks if c.status == "done"} if old else {}
        for chunk in chunks:
            if chunk.key in done and (directory / chunk.file).exists():
                kept = done[chunk.key]  # its audio, timings, line spans and QA takes all stay valid
                chunk.status, chunk.samples, chunk.render_seconds = "done", kept.samples, kept.render_seconds
                chunk.spans, chunk.takes, chunk.words = kept.spans, kept.takes, kept.words
        manifest = Manifest(
            job_id=old.job_id if old else job_id or uuid.uuid4().hex[:12], requested_by=actor,
            created=old.created if old else now, updated=now,
            status=old.status if old else "pending",  # a queued job stays queued while it is re-planned
            script=script_text, voices=voices, settings=settings, chunks=chunks, plan=plan,
            notes=delivery.unsupported(plan, voices, {line.index: line.speaker for line in script.lines},
                                       engine_capabilities(voices, settings)),
            content_flags=flags,
        )
        job = cls(directory, manifest)
        job.save()
        audit.record("job.updated" if old else "job.created", **{**trail, "job_id": manifest.job_id},
                     flagged=len(flags))
        return job

    @classmethod
    def open(cls, directory: Path) -> "Job":
        path = Path(directory) / MANIFEST
        if not path.exists():
            raise RenderError(f"{directory} holds no job (no {MANIFEST}); start one with `vibevoice render SCRIPT`")
        return cls(directory, Manifest.model_validate_json(path.read_text("utf-8")))

    # -- rendering -----------------------------------------------------------------------------------

    @property
    def pending(self) -> list[ChunkRecord]:
        """Chunks still to render; with QA on, also finished chunks nobody has heard yet (rendered before
        QA was switched on): they are checked, and re-rendered only if they fail."""
        unheard = self.manifest.settings.qa and self.manifest.settings.engine == "voices"
        return [c for c in self.manifest.chunks
                if c.status != "done" or not (self.dir / c.file).exists() or (unheard and not c.takes)]

    def render(self, progress: Callable[[Progress], None] | None = None,
               on_chunk: Callable[[ChunkRecord, np.ndarray], None] | None = None,
               stop: threading.Event | None = None) -> Manifest:
        """Render every chunk that is not finished yet. Safe to call again after any failure."""
        todo = self.pending
        self._progress = progress
        started = time.monotonic()
        todo_chars, done_chars, failures = sum(len(c.text) for c in todo), 0, []
        self._set_status("rendering")
        try:
            for chunk in todo:
                if stop is not None and stop.is_set():
                    raise KeyboardInterrupt
                self._report(progress, chunk, started, done_chars, todo_chars)
                audio = self._render_chunk(chunk, stop)
                if audio is None:
                    failures.append(chunk)
                    continue
                done_chars += len(chunk.text)
                if on_chunk:
                    on_chunk(chunk, audio)
        except KeyboardInterrupt:
            self._set_status("interrupted", "stopped by the user; resume to continue")
            raise
        except OSError as err:
            reason = "the disk is full" if is_disk_full(err) else str(err)
            self._set_status("failed", f"could not write to {self.dir}: {reason}")
            raise RenderError(f"{self.manifest.message}. Finished chunks are kept; free space and resume.") from err
        self._report(progress, None, started, done_chars, todo_chars)
        if failures:
            lines = ", ".join(str(self.script.lines[c.line_index].source_line) for c in failures)
            self._set_status("failed", f"{len(failures)} chunk(s) failed (script lines {lines}): {failures[0].error}")
            raise RenderError(f"{self.manifest.message}. Other chunks are kept; resume to retry.")
        self._set_status("rendered")
        return self.manifest

    def _render_chunk(self, chunk: ChunkRecord, stop: threading.Event | None = None) -> np.ndarray | None:
        settings = self.manifest.settings
        if settings.engine != "voices":
            return self._render_whole(chunk, stop)
        voice = self.manifest.voices[chunk.speaker]
        if chunk.emotion:
            voice = voice.model_copy(update={"spec": voice.emotions[chunk.emotion]})
        line = self.script.lines[chunk.line_index]

        def speak(speed: float) -> np.ndarray:
            if speed == chunk.speed and chunk.status == "done" and (self.dir / chunk.file).exists():
                return self.chunk_audio(chunk)  # a take finished before QA was on: hear it, don't redo it
            segment = Segment(chunk.line_index, chunk.speaker, chunk.text, line.language, speed)
            return np.asarray(get_engine(voice.engine).synthesize([segment], {chunk.speaker: voice}).audio, np.float32)

        t0 = time.monotonic()
        try:
            if settings.qa:
                audio, verdict = retake.best_take(chunk.text, line.language, chunk.speaker, chunk.speed, speak,
                                                  self._references(), settings.qa_retakes)
                chunk.takes, chunk.words = verdict.takes, verdict.words
            else:
                audio = speak(chunk.speed)
        except Exception as err:  # an engine bug must not cost the rest of the job
            if is_disk_full(err):
                raise  # the engine could not write (e.g. its cache): the whole job stops, resumably
            chunk.status, chunk.error = "failed", f"{type(err).__name__}: {err}"
            self.save()
            return None
        return self._finish(chunk, audio, t0)

    def _references(self) -> dict[str, np.ndarray]:
        """The cast's reference embeddings for QA, computed once per job run."""
        if self._refs is None:
            languages = {s: "zh" if langs == {"zh"} else "en" for s, langs in self.script.speaker_languages().items()}
            self._refs = retake.references(self.manifest.voices, languages)
        return self._refs

    def _render_whole(self, chunk: ChunkRecord, stop: threading.Event | None) -> np.ndarray | None:
        """A whole-script engine renders the job as one chunk, resuming from its own saved state."""
        settings = self.manifest.settings
        engine = get_engine(settings.engine, model_dir=settings.model_dir)
        t0 = time.monotonic()
        try:
            result = engine.render_job(self.dir, self.script, self.manifest.voices, settings, stop=stop,
                                       progress=self._frame_reporter(t0))
        except (KeyboardInterrupt, OSError):
            raise
        except Exception as err:  # noqa: BLE001 — recorded in the manifest; the saved state stays for a resume
            chunk.status, chunk.error = "failed", f"{type(err).__name__}: {err}"
            self.save()
            return None
        audio = np.asarray(result.audio, np.float32)
        chunk.spans = [tuple(int(x) for x in span) for span in result.spans]
        if settings.qa:  # the recogniser times every line, then each line is scored
            chunk.spans = retake.timed_spans(audio, self.script.lines, disclosure.language(self.script))
            chunk.takes = retake.check_lines(audio, chunk.spans, self.script.lines, self._references())
        self.manifest.notes = sorted(set(self.manifest.notes) | set(getattr(engine, "warnings", [])))
        return self._finish(chunk, audio, t0)

    def _frame_reporter(self, t0: float) -> Callable[[int, int], None]:
        """Frame-level progress of a whole-script engine, as the same ``Progress`` the page shows."""
        def report(frames: int, estimate: int) -> None:
            if self._progress is None or not frames:
                return
            elapsed = time.monotonic() - t0
            self._progress(Progress(done=0, total=1, audio_seconds=frames / 7.5, elapsed=elapsed,
                                    eta=elapsed / frames * max(0, estimate - frames), line_index=None,
                                    speaker=None, text=f"{frames}/{estimate} frames"))
        return report

    def _finish(self, chunk: ChunkRecord, audio: np.ndarray, t0: float) -> np.ndarray:
        """Write the chunk's audio, then record it: a crash between the two only costs a re-render."""
        write_bytes_atomic(self.dir / chunk.file, wav_bytes(audio, "FLOAT"))
        chunk.status, chunk.samples, chunk.error = "done", int(audio.size), None
        chunk.render_seconds = round(time.monotonic() - t0, 3)
        self.save()
        return audio

    def _report(self, progress, chunk, started, done_chars, todo_chars) -> None:
        if progress is None:
            return
        elapsed = time.monotonic() - started
        eta = elapsed / done_chars * (todo_chars - done_chars) if done_chars else None
        finished = [c for c in self.manifest.chunks if c.status == "done"]
        progress(Progress(
            done=len(finished), total=len(self.manifest.chunks),
            audio_seconds=sum(c.samples for c in finished) / SAMPLE_RATE, elapsed=elapsed, eta=eta,
            line_index=chunk.line_index if chunk else None, speaker=chunk.speaker if chunk else None,
            text=chunk.text if chunk else None,
        ))

    # -- reading back --------------------------------------------------------------------------------

    def chunk_audio(self, chunk: ChunkRecord) -> np.ndarray:
        audio, rate = sf.read(self.dir / chunk.file, dtype="float32")
        if rate != SAMPLE_RATE or audio.size != chunk.samples:
            raise RenderError(f"chunk file {chunk.file} is damaged; delete it and resume to re-render it")
        return audio

    # -- persistence ---------------------------------------------------------------------------------

    def save(self) -> None:
        self.manifest.updated = _now()
        write_bytes_atomic(self.dir / MANIFEST, self.manifest.model_dump_json(indent=1).encode("utf-8"))

    def _set_status(self, status: str, message: str | None = None) -> None:
        self.manifest.status, self.manifest.message = status, message
        try:
            self.save()
        except OSError:
            pass  # the disk-full path: the previous manifest is still valid and the chunks are on disk


def check_voices(script: Script, voices: dict[str, VoiceTemplate], settings: RenderSettings) -> None:
    """Every speaker has a voice its engine accepts; raise ValueError naming the speaker otherwise."""
    missing = [s for s in script.speakers if s not in voices]
    if missing:
        raise ValueError(f"no voice for speaker(s) {', '.join(missing)}")
    for speaker in script.speakers:
        engine = get_engine(voices[speaker].engine) if settings.engine == "voices" else \
            get_engine(settings.engine, model_dir=settings.model_dir)
        try:
            engine.check_voice(voices[speaker])
        except ValueError as err:
            raise ValueError(f"speaker {speaker!r}: {err}") from err


def admit(script: Script, text: str, voices: dict[str, VoiceTemplate], settings: RenderSettings,
          old: Manifest | None, trail: dict) -> list[Finding]:
    """Everything a job must pass before it is written: consent for cloned voices, voices that suit
    their engine, the QA models when QA is on, and the content filter (a block is audited). Returns
    the content filter's flags."""
    require_consent(voices)
    check_voices(script, voices, settings)
    if settings.qa:
        retake.require_models()
    try:
        return enforce(script, settings.content_filter, reviewed=_reviewed(script, text, settings, old))
    except ContentBlocked as blocked:
        audit.record("job.blocked", **trail, findings=[str(f) for f in blocked.findings if f.action == "block"])
        raise


def _reviewed(script: Script, text: str, settings: RenderSettings, old: Manifest | None) -> list[Finding]:
    """The LLM review's findings when the job asks for one; a job re-created with the same script keeps
    the findings it already has instead of asking again."""
    if not settings.content_review:
        return []
    if old is not None and old.script == text and old.settings.content_review:
        return [f for f in old.content_flags if f.source.startswith("LLM review")]
    from .content_review import review

    return review(script, settings.content_filter)


def engine_capabilities(voices: dict[str, VoiceTemplate], settings: RenderSettings) -> dict:
    """Voice engine → what it honours; under a whole-script engine every voice is spoken by that engine."""
    if settings.engine != "voices":
        capabilities = get_engine(settings.engine, model_dir=settings.model_dir).capabilities
        return {v.engine: capabilities for v in voices.values()}
    return {v.engine: get_engine(v.engine).capabilities for v in voices.values()}


def plan_chunks(script: Script, voices: dict[str, VoiceTemplate], settings: RenderSettings,
                plan: Plan | None = None) -> list[ChunkRecord]:
    """Cut every line into pieces its engine can speak in one call; key each by what shapes its audio."""
    if settings.engine != "voices":
        return [whole_script_chunk(script, voices, settings)]
    chunks: list[ChunkRecord] = []
    plans = delivery.line_plans(plan)
    for line in script.lines:
        line_plan = plans.get(line.index)
        voice = delivery.line_voice(voices[line.speaker], line_plan)
        speed = delivery.line_speed(voices[line.speaker], settings.speed, line_plan)
        emotion = line_plan.emotion if voice is not voices[line.speaker] else None
        engine = get_engine(voice.engine)
        for text in split_text(line.text, engine.capabilities.max_chunk_chars):
            key = chunk_key(engine.version, voice, text, line.language, speed,
                            settings.seed if engine.capabilities.seeded else None)
            chunks.append(ChunkRecord(index=len(chunks), key=key, line_index=line.index, speaker=line.speaker,
                                      text=text, speed=round(speed, 4), emotion=emotion))
    return chunks


def whole_script_chunk(script: Script, voices: dict[str, VoiceTemplate], settings: RenderSettings) -> ChunkRecord:
    """The single chunk of a whole-script engine, keyed by everything that shapes the generation."""
    engine = get_engine(settings.engine, model_dir=settings.model_dir)
    identity = {"engine": engine.version, "lines": [(ln.speaker, ln.text) for ln in script.lines],
                "voices": {s: v.spec.model_dump() for s, v in voices.items()},
                "settings": settings.model_dump(include={"seed", "cfg_scale", "diffusion_steps", "max_minutes"}),
                "model": str(getattr(engine, "checkpoint", None) and engine.checkpoint.path)}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]
    text = " ".join(ln.text for ln in script.lines)
    return ChunkRecord(index=0, key=key, line_index=0, speaker=script.speakers[0], text=text)


def chunk_key(engine_version: str, voice: VoiceTemplate, text: str, language: str, speed: float,
              seed: int | None) -> str:
    identity = {"engine": engine_version, "spec": voice.spec.model_dump(), "text": text,
                "language": language, "speed": round(speed, 4), "seed": seed}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def wav_bytes(audio: np.ndarray, subtype: str = "PCM_16", strings: dict[str, str] | None = None,
              container: str = "WAV") -> bytes:
    """Encode in memory first: libsndfile swallows write errors raised inside its I/O callbacks, so
    writing through it directly would hide a full disk; a plain ``write`` of bytes raises it.
    ``strings`` (title, comment, software, date, artist) become the file's INFO chunk or comments."""
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", SAMPLE_RATE, 1, subtype, format=container) as out:
        for key, value in (strings or {}).items():
            setattr(out, key, value)
        out.write(audio)
    return buffer.getvalue()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

"""The long-form renderer: a job directory that survives Ctrl-C, SIGKILL, a full disk and edits.

A job is a script, a voice per speaker and settings. It is cut into chunks (``chunks``); every finished
chunk is written atomically to ``chunks/`` and recorded in ``job.json`` before the next one starts, so
at any moment the directory holds everything rendered so far. A chunk's file name is its key, so
re-running a job skips finished chunks and editing one line re-renders only that line.

Layout of a job directory::

    job.json          the manifest (script, voices, settings, plan, chunk list with status)
    chunks/<key>.wav  finished chunks, float32 mono 24 kHz
    state/            carried engine state of a whole-script engine
    out/              exports written by ``export``

A job is created once (``Job.create``: admission, then the manifest). When a director still has to
plan it (``planner``), its chunks are keyed by ``Job.direct`` from the final plan, in whichever
process renders it, so submitting stays instant and the plan is made once. A job someone may be
listening to renders each line while the director plans the next (``ahead``, see ``ahead.py``).
"""

from __future__ import annotations

import difflib
import fcntl
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import soundfile as sf

from .. import audit, delivery, disclosure
from ..atomic import is_disk_full, write_bytes_atomic
from ..audio import SAMPLE_RATE, wav_bytes
from ..errors import Cancelled, Conflict, NotFound, RenderFailed
from ..plan.schema import LinePlan, Plan
from ..qa import gate
from ..script import Script, parse_script
from ..voices import VoiceTemplate
from .admission import admit
from .ahead import DirectorThread
from .chunks import Renderer, renderer_for
from .model import MANIFEST, ChunkRecord, Manifest, Progress, RenderSettings, TimedWord

ProgressFn = Callable[[Progress], None]
LOCK = ".lock"
_REVISION = re.compile(rb'"revision":\s*(\d+)')


class Job:
    def __init__(self, directory: Path, manifest: Manifest) -> None:
        self._progress: ProgressFn | None = None
        self.direct_seconds = 0.0  # how long this process's ``direct`` took (estimates learn from it)
        self.rendered_here = 0  # chunks this process rendered (a job rendered from scratch teaches estimates)
        self._refs: dict[str, np.ndarray] | None = None
        self._renderer: Renderer | None = None
        self._on_disk = (Path(directory) / MANIFEST).exists()  # False until a new job's first save
        # Called before every manifest write (e.g. a farm worker checks its lease); may raise to refuse it.
        self.guard: Callable[[], None] | None = None
        self.dir = Path(directory)
        self.manifest = manifest
        self.script: Script = parse_script(manifest.script)

    # -- creating and opening ------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, script_text: str, voices: dict[str, VoiceTemplate],
               settings: RenderSettings | None = None, plan: Plan | None = None, actor: str | None = None,
               job_id: str | None = None, planner: str | None = None, replan: bool = False) -> "Job":
        """Start a job, or update the one already in ``directory`` keeping every finished chunk.

        Admission runs first (``admission.admit``); nothing is written if it fails. ``planner`` names a
        director still to run (``direct``) when no ``plan`` is given; otherwise the chunks are keyed now.
        ``actor`` (for the audit log) defaults to whoever created the job, else the local user; a new
        job gets ``job_id`` (default: random), an existing one keeps its id. When the director runs
        again on an edited script, lines that did not change keep their previous plan (so their audio
        is kept too) unless ``replan``.
        """
        directory, settings = Path(directory), settings or RenderSettings()
        script = parse_script(script_text)
        old = cls.open(directory).manifest if (directory / MANIFEST).exists() else None
        actor = actor or (old.requested_by if old else None) or audit.local_actor()
        trail = dict(actor=actor, job_id=old.job_id if old else None, script_sha256=audit.script_hash(script_text),
                     lines=len(script.lines), voices=audit.voice_summary(voices), engine=settings.engine,
                     content_filter=settings.content_filter)
        renderer = renderer_for(settings)
        flags = admit(script, script_text, voices, settings, renderer, old, trail)
        now = _now()
        pending = plan is None and planner not in (None, delivery.NO_PLANNER)
        manifest = Manifest(
            job_id=old.job_id if old else job_id or uuid.uuid4().hex[:12], requested_by=actor,
            revision=old.revision if old else 0,
            created=old.created if old else now, updated=now, status=old.status if old else "pending",
            title=old.title if old else "", script=script_text, voices=voices, settings=settings, plan=plan,
            planner=planner if pending else None, content_flags=flags, chunked=False,
            chunks=old.chunks if old else [],  # kept until re-keyed, so finished audio is never forgotten
            kept_plans=_unchanged_plans(old, script) if pending and not replan else [],
            kept_hints=old.speaker_hints if old else {},
        )
        job = cls(directory, manifest)
        job._renderer = renderer
        if not pending:
            job._key_chunks(plan)
        job.save()
        audit.record("job.updated" if old else "job.created", **{**trail, "job_id": manifest.job_id},
                     flagged=len(flags))
        return job

    @classmethod
    def open(cls, directory: Path) -> "Job":
        path = Path(directory) / MANIFEST
        if not path.exists():
            raise NotFound(f"{directory} holds no job (no {MANIFEST}); start one with `vibevoice render SCRIPT`")
        return cls(directory, Manifest.model_validate_json(path.read_text("utf-8")))

    @property
    def renderer(self) -> Renderer:
        if self._renderer is None:
            self._renderer = renderer_for(self.manifest.settings)
        return self._renderer

    def direct(self, progress: Callable[[int, int], None] | None = None, ahead: bool = False,
               stop: threading.Event | None = None) -> None:
        """Run the director the job is waiting for (once), then key its chunks by the plan it made.

        With ``ahead`` (a line-by-line job about to render), each line is rendered as soon as its plan is
        final, while the director plans the rest; those chunks are kept by their keys (``ahead.py``)."""
        m = self.manifest
        if m.chunked:
            return
        t0 = time.monotonic()
        planner = m.planner or delivery.NO_PLANNER
        if ahead and self.renderer.renders_ahead and planner not in (delivery.NO_PLANNER, "rules"):
            plan = self._direct_rendering_ahead(planner, progress, stop)
        else:
            plan = delivery.direct(self.script, planner, m.speaker_hints, progress=progress)
        self.direct_seconds = time.monotonic() - t0
        plan = self._keep_unchanged(plan)
        m.plan, m.planner, m.kept_plans = plan, None, []
        self._key_chunks(plan)
        self.save()

    def _direct_rendering_ahead(self, planner: str, progress, stop: threading.Event | None) -> Plan | None:
        m = self.manifest
        director = DirectorThread(lambda on_line: delivery.direct(self.script, planner, m.speaker_hints,
                                                                  progress=progress, on_line=on_line))
        kept = [c for c in m.chunks if c.status == "done" and (self.dir / c.file).exists()]
        started = time.monotonic()
        try:
            return self._render_while_directed(director, planner, kept, started, stop)
        except BaseException:
            director.cancel()
            raise

    def _render_while_directed(self, director: DirectorThread, planner: str, kept: list, started: float,
                               stop: threading.Event | None) -> Plan | None:
        """Each line's chunks rendered as its plan arrives; then the director's whole plan."""
        m = self.manifest
        done, planned, ahead = {c.key: c for c in kept}, [], []
        while lines := director.next_lines():
            partial = self._keep_unchanged(Plan(planner=planner, lines=lines))
            planned += partial.lines
            m.plan = Plan(planner=planner, lines=planned)  # so far: the stream lays its pauses out from it
            for chunk in self.renderer.chunks(self.script, m.voices, partial, lines=[p.line_index for p in lines]):
                if stop is not None and stop.is_set():
                    raise Cancelled("cancelled; resume to continue")
                found = done.get(chunk.key)
                ahead.append(found or chunk)
                ahead[-1].index = len(ahead) - 1
                placed = {id(c) for c in ahead}  # earlier audio stays listed until the final keying
                m.chunks, m.ahead = ahead + [c for c in kept if id(c) not in placed], len(ahead)
                if found is None:
                    self._report(chunk, started, 0, 0)
                    self._render_chunk(chunk, stop)
                    self._report(chunk, started, 0, 0)  # a listener's stream wakes as the chunk is there
        return director.result()

    def _keep_unchanged(self, plan: Plan | None) -> Plan | None:
        """The new plan with the previous plan of every unchanged line (same speaker, text, hints and
        speaker hint): a planner reading context must not re-plan a neighbour of an edited line."""
        m = self.manifest
        speakers = {ln.index: ln.speaker for ln in self.script.lines}
        kept = {p.line_index: p for p in m.kept_plans
                if m.speaker_hints.get(speakers[p.line_index]) == m.kept_hints.get(speakers[p.line_index])}
        if plan is None or not kept:
            return plan
        lines = [kept.get(p.line_index, p) for p in plan.lines]
        return plan.model_copy(update={"lines": lines, "cached": sorted(set(plan.cached) | set(kept)),
                                       "fallbacks": {i: r for i, r in plan.fallbacks.items() if i not in kept}})

    def _key_chunks(self, plan: Plan | None) -> None:
        """Key the chunks from ``plan``; a chunk whose key and file already exist keeps its audio and records."""
        m = self.manifest
        done = {c.key: c for c in m.chunks if c.status == "done"}
        chunks = self.renderer.chunks(self.script, m.voices, plan)
        for chunk in chunks:
            kept = done.get(chunk.key)
            if kept and (self.dir / chunk.file).exists():  # its audio, timings, spans and QA takes stay valid
                chunk.status, chunk.samples, chunk.render_seconds = "done", kept.samples, kept.render_seconds
                chunk.spans, chunk.takes, chunk.words = kept.spans, kept.takes, kept.words
        speakers = {line.index: line.speaker for line in self.script.lines}
        honoured = {s: self.renderer.honoured(v) for s, v in m.voices.items()}
        m.chunks, m.chunked, m.ahead = chunks, True, 0
        m.notes = delivery.unsupported(plan, m.voices, speakers, honoured) + list(self.renderer.notes)

    # -- rendering -----------------------------------------------------------------------------------

    @property
    def pending(self) -> list[ChunkRecord]:
        """Chunks still to render; with QA on, also finished chunks nobody has heard yet (rendered before
        QA was switched on): they are checked, and re-rendered only if they fail."""
        unheard = self.manifest.settings.qa and not self.renderer.whole_script
        return [c for c in self.manifest.chunks
                if c.status != "done" or not (self.dir / c.file).exists() or (unheard and not c.takes)]

    def render(self, progress: ProgressFn | None = None, stop: threading.Event | None = None,
               direct_progress: Callable[[int, int], None] | None = None, ahead: bool = False) -> Manifest:
        """Render every chunk that is not finished yet (directing first if the job waits for its plan, with
        ``ahead`` as in ``direct``). Safe to call again after any failure.

        ``stop`` cancels between chunks (and between a whole-script engine's steps): the job becomes
        ``interrupted`` and ``Cancelled`` is raised. Ctrl-C does the same with ``KeyboardInterrupt``.
        """
        self._progress = progress
        started = time.monotonic()
        self.set_status("rendering")
        try:
            if not self.manifest.chunked:
                self.direct(direct_progress, ahead=ahead, stop=stop)
            todo = self.pending
            todo_chars, done_chars, failures = sum(len(c.text) for c in todo), 0, []
            for n, chunk in enumerate(todo):
                if stop is not None and stop.is_set():
                    raise Cancelled("cancelled; resume to continue")
                if n % self.renderer.batch_size == 0:  # a batching engine renders the next lines together,
                    self._prefetch(todo[n:n + self.renderer.lookahead])  # an engine with lanes the next few
                self._report(chunk, started, done_chars, todo_chars)
                if self._render_chunk(chunk, stop) is None:
                    failures.append(chunk)
                    continue
                done_chars += len(chunk.text)
        except (KeyboardInterrupt, Cancelled) as stopped:
            cancelled = isinstance(stopped, Cancelled) or (stop is not None and stop.is_set())
            self.set_status("interrupted", "cancelled; resume to continue" if cancelled
                             else "stopped by the user; resume to continue")
            if cancelled and not isinstance(stopped, Cancelled):
                raise Cancelled(self.manifest.message) from None
            raise
        except OSError as err:
            reason = "the disk is full" if is_disk_full(err) else str(err)
            self.set_status("failed", f"could not write to {self.dir}: {reason}")
            raise RenderFailed(f"{self.manifest.message}. Finished chunks are kept; free space and resume.") from err
        self._report(None, started, done_chars, todo_chars)
        if failures:
            lines = ", ".join(str(self.script.lines[c.line_index].source_line) for c in failures)
            self.set_status("failed", f"{len(failures)} chunk(s) failed (script lines {lines}): {failures[0].error}")
            raise RenderFailed(f"{self.manifest.message}. Other chunks are kept; resume to retry.")
        self.set_status("rendered")
        return self.manifest

    def _prefetch(self, chunks: list[ChunkRecord]) -> None:
        """Batch-render ahead; a failure here costs nothing: each chunk is then rendered (and fails) alone."""
        try:
            self.renderer.prefetch(chunks, self.script, self.manifest.voices)
        except (KeyboardInterrupt, Cancelled, OSError):
            raise
        except Exception:  # noqa: BLE001 — recorded per chunk when it is rendered on its own
            pass

    def _render_chunk(self, chunk: ChunkRecord, stop: threading.Event | None) -> np.ndarray | None:
        """Render one chunk and record it; an engine failure is recorded on the chunk (None returned)."""
        t0 = time.monotonic()
        try:
            audio = self._render_whole(chunk, stop, t0) if self.renderer.whole_script else self._render_line(chunk)
        except (KeyboardInterrupt, Cancelled, OSError):
            raise  # stopping, or a full disk: the whole job stops, resumably
        except Exception as err:  # noqa: BLE001 — an engine bug must not cost the rest of the job
            if is_disk_full(err):
                raise
            chunk.status, chunk.error = "failed", f"{type(err).__name__}: {err}"
            self.save()
            return None
        return self._finish(chunk, audio, t0)

    def _render_line(self, chunk: ChunkRecord) -> np.ndarray:
        voice = self.manifest.voices[chunk.speaker]
        language = self.script.lines[chunk.line_index].language
        timed: dict[float, list[TimedWord]] = {}  # the engine's own word times, per take

        def speak(speed: float) -> np.ndarray:
            if speed == chunk.speed and chunk.status == "done" and (self.dir / chunk.file).exists():
                timed[speed] = chunk.words
                return self.chunk_audio(chunk)  # a take finished before QA was on: hear it, don't redo it
            take = self.renderer.take(chunk, language, voice, speed)
            timed[speed] = [TimedWord(text=w, start=a, end=b) for w, a, b in take.words]
            return np.asarray(take.audio, np.float32)

        if not self.manifest.settings.qa:
            audio = speak(chunk.speed)
            chunk.words = timed[chunk.speed]
            return audio
        audio, verdict = gate.best_take(chunk.text, language, chunk.speaker, chunk.speed, speak,
                                        self._references(), self.manifest.settings.qa_retakes)
        kept = next((t.speed for t in verdict.takes if t.kept), chunk.speed)
        chunk.takes, chunk.words = verdict.takes, timed.get(kept) or verdict.words  # the engine's times first
        return audio

    def _render_whole(self, chunk: ChunkRecord, stop: threading.Event | None, t0: float) -> np.ndarray:
        """A whole-script engine renders the job as one chunk, resuming from its own saved state."""
        result = self.renderer.render(self.dir, self.script, self.manifest.voices, self._frame_reporter(t0), stop)
        audio = np.asarray(result.audio, np.float32)
        chunk.spans = [tuple(int(x) for x in span) for span in result.spans]
        if self.manifest.settings.qa:  # the recogniser times every line, then each line is scored
            chunk.spans = gate.timed_spans(audio, self.script.lines, disclosure.language(self.script))
            chunk.takes = gate.check_lines(audio, chunk.spans, self.script.lines, self._references())
        warnings = getattr(self.renderer.engine(), "warnings", [])
        self.manifest.notes = sorted(set(self.manifest.notes) | set(warnings))
        return audio

    def _references(self) -> dict[str, np.ndarray]:
        """The cast's reference embeddings for QA, computed once per job run."""
        if self._refs is None:
            languages = {s: "zh" if langs == {"zh"} else "en" for s, langs in self.script.speaker_languages().items()}
            self._refs = gate.references(self.manifest.voices, languages)
        return self._refs

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
        self.rendered_here += 1
        chunk.render_seconds = round(time.monotonic() - t0, 3)
        self.save()
        return audio

    def _report(self, chunk: ChunkRecord | None, started: float, done_chars: int, todo_chars: int) -> None:
        if self._progress is None:
            return
        elapsed = time.monotonic() - started
        eta = elapsed / done_chars * (todo_chars - done_chars) if done_chars else None
        finished = [c for c in self.manifest.chunks if c.status == "done"]
        self._progress(Progress(
            done=len(finished), total=len(self.manifest.chunks),
            audio_seconds=sum(c.samples for c in finished) / SAMPLE_RATE, elapsed=elapsed, eta=eta,
            line_index=chunk.line_index if chunk else None, speaker=chunk.speaker if chunk else None,
            text=chunk.text if chunk else None,
        ))

    # -- reading back --------------------------------------------------------------------------------

    def chunk_audio(self, chunk: ChunkRecord) -> np.ndarray:
        audio, rate = sf.read(self.dir / chunk.file, dtype="float32")
        if rate != SAMPLE_RATE or audio.size != chunk.samples:
            raise RenderFailed(f"chunk file {chunk.file} is damaged; delete it and resume to re-render it")
        return audio

    # -- persistence ---------------------------------------------------------------------------------

    def save(self) -> None:
        """Write the manifest, as its only writer: under a lock, and only over the revision this job read.

        Another writer in between (an edit, a cancel, a second worker) makes this raise ``Conflict``;
        a job whose directory was deleted meanwhile raises ``NotFound`` and is not brought back.
        """
        if self._on_disk and not (self.dir / MANIFEST).exists():
            raise NotFound(f"job {self.manifest.job_id} was deleted")
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / LOCK, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = _revision_on_disk(self.dir)
            if found is not None and found != self.manifest.revision:
                raise Conflict(f"job {self.manifest.job_id} was changed meanwhile (revision {found}, this writer "
                               f"read {self.manifest.revision}); reload it and try again")
            if self.guard is not None:
                self.guard()
            self.manifest.revision += 1
            self.manifest.updated = _now()
            write_bytes_atomic(self.dir / MANIFEST, self.manifest.model_dump_json(indent=1).encode("utf-8"))
            self._on_disk = True

    def set_status(self, status: str, message: str | None = None) -> None:
        """Record the job's status; on a full disk the previous manifest stays valid (and is kept)."""
        self.manifest.status, self.manifest.message = status, message
        try:
            self.save()
        except OSError:
            pass  # the disk-full path: the previous manifest is still valid and the chunks are on disk



def _unchanged_plans(old: Manifest | None, script: Script) -> list[LinePlan]:
    """The previous plan of each line of ``script`` that is unchanged from ``old``'s script, re-indexed."""
    if old is None or old.plan is None:
        return []
    before = parse_script(old.script).lines
    plans = {p.line_index: p for p in old.plan.lines}
    matcher = difflib.SequenceMatcher(None, [_identity(ln) for ln in before],
                                      [_identity(ln) for ln in script.lines], autojunk=False)
    kept = []
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            if (found := plans.get(block.a + k)) is not None:
                kept.append(found.model_copy(update={"line_index": block.b + k}))
    return kept


def _identity(line) -> tuple:
    return line.speaker, line.text, tuple(line.hints), line.language


def _revision_on_disk(directory: Path) -> int | None:
    """The revision of the manifest on disk (None: no manifest yet); it is near the top of the file."""
    try:
        with open(directory / MANIFEST, "rb") as f:
            head = f.read(256)
    except FileNotFoundError:
        return None
    found = _REVISION.search(head)
    return int(found.group(1)) if found else 0


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

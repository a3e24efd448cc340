"""The one job flow every front end uses: the page, the HTTP API and the CLI.

``prepare`` turns a request into a job on disk (voices assigned, the plan validated, admission run,
the manifest written: once); ``run`` takes a job through the rest of the flow (direct → render →
export) and leaves it ``done``, ``failed`` with the reason, or ``interrupted``. ``JobService`` runs
``run`` through an executor: ``LocalExecutor`` (the default: worker threads in this process) or the
render farm's (``farm.executor``: RQ workers on other processes and boxes), so the page and the API
behave the same either way; the CLI calls ``prepare`` and ``run`` in its own thread, so nothing
differs but who waits.

Jobs live on disk (one directory per job under the app's jobs directory), so the list survives a page
reload and a server restart; a job that was rendering when the server stopped comes back as
``interrupted`` and resumes from its last finished chunk.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ContextManager, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .. import audit, delivery, estimate, paths, provenance
from ..audio import SAMPLE_RATE, fade, pcm16
from ..errors import BadInput, Cancelled, Conflict, NotFound, RenderFailed, VibeVoiceError
from ..export import export_job, job_provenance, layout, mp3_encoder, spoken_notice
from ..plan.schema import LinePlan, Plan
from ..plan.validate import load_plan
from ..qa import gate
from ..script import MAX_SCRIPT_BYTES, check_text, parse_script
from ..voices import assign_voices, load_templates, slug
from .model import ACTIVE, MANIFEST, PRIORITIES, Priority, Progress, RenderSettings
from .runner import Job

log = logging.getLogger(__name__)
JOB_ID = re.compile(r"^[0-9a-f]{12}\Z")
PREVIEW_GAIN = 10 ** (6 / 20)  # the stream is heard before loudness is measured: a fixed, safe lift


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    script: str = Field(max_length=MAX_SCRIPT_BYTES, description="the dialogue script")
    voices: dict[str, str] = Field(default_factory=dict, description="speaker → voice template id")
    settings: RenderSettings = Field(default_factory=RenderSettings)
    plan: Plan | None = Field(default=None, description="a (possibly edited) plan; used as given, after validation")
    planner: str | None = Field(default=None, description="auto, rules, local, http or none (default: "
                                "$VIBEVOICE_PLANNER or auto); ignored when a plan is given")
    speaker_hints: dict[str, str] = Field(default_factory=dict, description="speaker → delivery hint for the director")
    replan: bool = Field(default=False, description="on an update, have the director plan every line again "
                         "(default: lines whose text, speaker and hints did not change keep their plan and audio)")
    title: str = Field(default="", max_length=120)
    priority: Priority = Field(default="default", description="high, default or low: a short preview (high) "
                               "starts before a long job (default) that was queued earlier")

    _script_characters = field_validator("script", mode="before")(check_text)


class JobInfo(BaseModel):
    id: str
    title: str
    status: str
    message: str | None
    priority: str = "default"
    done: int
    total: int
    audio_seconds: float
    eta_seconds: float | None
    current_line: int | None
    speakers: list[str]
    voices: dict[str, str]
    outputs: list[str] = Field(description="downloadable kinds: wav, mp3, flac, srt, vtt, stem:<speaker>")
    notes: list[str] = Field(default_factory=list, description="content-filter flags and QA re-renders")
    created: str


class JobNotFound(NotFound):
    """No job with that id (or the id is not of the fixed form)."""


# -- the flow ----------------------------------------------------------------------------------------

def prepare(directory: Path, request: JobRequest, actor: str | None = None, job_id: str | None = None,
            voice_ids: dict[str, str] | None = None) -> Job:
    """Create (or update) the job in ``directory`` from ``request``: voices, plan, admission, manifest.

    ``voice_ids`` are earlier choices kept where the request names none (the CLI's ``--resume``).
    Raises a ``BadInput`` (script, voice, plan, content filter) before anything is written.
    """
    script = parse_script(request.script)
    requested = {**(voice_ids or {}), **request.voices}
    engines = {"qwen3"} if request.settings.engine == "qwen3" else None
    voices = assign_voices(script.speakers, script.speaker_languages(), requested, load_templates(), engines)
    plan = load_plan(request.plan.model_dump(), script) if request.plan else None
    job = Job.create(directory, request.script, voices, request.settings, plan, actor=actor, job_id=job_id,
                     planner=None if plan else (request.planner or delivery.default_planner()), replan=request.replan)
    job.manifest.title = request.title or job.manifest.title
    job.manifest.priority = request.priority
    job.manifest.speaker_hints = request.speaker_hints
    job.save()
    return job


def run(job: Job, output: Path | None = None, progress: Callable[[Progress], None] | None = None,
        stop: threading.Event | None = None, direct_progress: Callable[[int, int], None] | None = None,
        stems: bool | None = None, mp3_kbps: int = 96) -> dict[str, str]:
    """Direct, render and export ``job``; return its outputs. A failed export marks the job failed.

    A job rendered from scratch teaches the render-time estimate what this machine takes."""
    planner = None if job.manifest.chunked else job.manifest.planner
    learns = estimate.covers(job.manifest.voices, job.manifest.settings.engine)
    cold = {v.engine for v in job.manifest.voices.values() if learns and not estimate.engine_loaded(v.engine)}
    director_cold = not estimate.director_loaded()
    t0, job.direct_seconds, job.rendered_here = time.monotonic(), 0.0, 0
    job.render(progress=progress, stop=stop, direct_progress=direct_progress, ahead=True)  # directs first
    t2 = time.monotonic()
    # The director and the first lines overlap (``ahead``); the estimate adds them, as the two cores do.
    t1, whole = t0 + job.direct_seconds, job.rendered_here == len(job.manifest.chunks)
    if output is None:
        name = slug(job.manifest.title or first_words(job))[:40].strip("-") or "podcast"
        output = job.dir / "out" / f"{name}.mp3"
    try:
        outputs = export_job(job, output, stems=len(job.script.speakers) > 1 if stems is None else stems,
                             mp3_kbps=mp3_kbps)
        if whole and learns:
            estimate.learn(job.script, job.manifest.voices, planner, cold, t1 - t0, t2 - t1, time.monotonic() - t2,
                           director_cold)
        return outputs
    except Exception as err:  # noqa: BLE001 — recorded on the job, then raised as a render failure
        reason = str(err) if isinstance(err, (VibeVoiceError, OSError)) else f"{type(err).__name__}: {err}"
        job.set_status("failed", f"export failed: {reason}; the rendered chunks are kept, resume to retry")
        raise RenderFailed(job.manifest.message) from err


def first_words(job: Job) -> str:
    text = job.script.lines[0].text if job.script.lines else ""
    return text[:48] + ("…" if len(text) > 48 else "")


def run_queued(job: Job, progress: Callable[[Progress], None] | None = None,
               stop: threading.Event | None = None) -> None:
    """``run`` for a queued job on behalf of a worker (a thread here or a farm worker): every outcome,
    a bug included, ends up in the job's manifest; nothing is raised for the worker to die of."""
    try:
        run(job, progress=progress, stop=stop)
    except (Cancelled, RenderFailed):
        pass  # the manifest says what happened and how to go on
    except (Conflict, NotFound) as err:  # cancelled, edited or deleted meanwhile, or the farm's lease lost
        log.info("job %s: %s; this worker let it go", job.manifest.job_id, err)
    except Exception as err:  # noqa: BLE001 — a bug must not kill the worker or hide from the user
        error_id = uuid.uuid4().hex[:8]
        log.exception("job %s failed unexpectedly (error %s)", job.manifest.job_id, error_id)
        job.set_status("failed", f"internal error {error_id} ({type(err).__name__}); the server log has "
                       "the details; finished chunks are kept, resume to retry")


# -- executors: who renders the queued jobs -----------------------------------------------------------

class Executor(Protocol):
    """What ``JobService`` needs from whoever renders its queued jobs."""

    def start(self, root: Path) -> None: ...  # jobs live under root; recover what a restart left behind

    def enqueue(self, job: Job) -> None: ...  # the manifest already says ``queued``

    def cancel(self, job: Job) -> None: ...  # stop at the next chunk; a queued job becomes interrupted

    def live(self, job_id: str) -> Progress | None: ...  # the latest progress of a rendering job

    def waiting(self, job: Job) -> str | None: ...  # why a queued job cannot start, if it cannot

    def holding(self, job_id: str, wait: float = 2.0) -> ContextManager[None]: ...  # the right to write its manifest

    # Return early when some job moved on; given ``since`` (what it returned before), at once if one moved
    # on since then, so a change between reading a manifest and waiting is not missed.
    def wait_change(self, timeout: float, since: int | None = None) -> int: ...

    def abandoned(self, job: Job) -> str | None: ...  # why nobody will ever finish this active job, if so


class LocalExecutor:
    """Queued jobs rendered by ``workers`` threads in this process, by priority, then submission order.

    The default: nothing to install or start. A job rendering when the process stopped comes back as
    ``interrupted`` on the next start and resumes from its last finished chunk.
    """

    def __init__(self, workers: int = 1) -> None:
        self.workers, self.root = workers, Path()
        self._queue: queue.PriorityQueue[tuple[int, int, str]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._live: dict[str, Progress] = {}
        self._stops: dict[str, threading.Event] = {}
        self._running: set[str] = set()  # jobs a worker thread is inside ``run`` for
        self._changed = threading.Condition()
        self._changes = 0  # counts notifications: ``wait_change(since=…)`` sees the ones it was not waiting for

    def start(self, root: Path) -> None:
        self.root = root
        recover(root)
        for n in range(self.workers):
            threading.Thread(target=self._work, name=f"render-worker-{n}", daemon=True).start()

    def enqueue(self, job: Job) -> None:
        job_id = job.manifest.job_id
        self._stops[job_id] = threading.Event()  # a fresh one: an old cancel must not stop this run
        self._queue.put((PRIORITIES.index(job.manifest.priority), next(self._order), job.dir.name))
        self._notify()

    def cancel(self, job: Job) -> None:
        self._stops.setdefault(job.dir.name, threading.Event()).set()
        if job.manifest.status == "queued" and job.dir.name not in self._running:
            job.set_status("interrupted", "cancelled; resume to continue")
            self._notify()

    def live(self, job_id: str) -> Progress | None:
        return self._live.get(job_id)

    def waiting(self, job: Job) -> str | None:
        return None  # this process has every engine the job's admission accepted

    def holding(self, job_id: str, wait: float = 2.0) -> ContextManager[None]:
        """Wait (up to ``wait`` s) for a worker thread still inside the job to let go; the manifest's lock
        and revision (``Job.save``) keep the writes themselves one at a time."""
        deadline = time.monotonic() + wait
        with self._changed:
            while job_id in self._running and time.monotonic() < deadline:
                self._changed.wait(timeout=0.2)
        if job_id in self._running:
            raise Conflict(f"job {job_id} is still stopping (its current chunk takes a while); try again in a moment")
        return contextlib.nullcontext()

    def abandoned(self, job: Job) -> str | None:
        return None  # a worker thread records every outcome on the job itself (``run_queued``)

    def wait_change(self, timeout: float, since: int | None = None) -> int:
        with self._changed:
            if since is None or since == self._changes:
                self._changed.wait(timeout=timeout)
            return self._changes

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()[2]
            with self._changed:
                self._running.add(job_id)
            try:
                self._run(job_id)
            finally:
                self._live.pop(job_id, None)
                with self._changed:
                    self._running.discard(job_id)
                self._notify()

    def _run(self, job_id: str) -> None:
        stop = self._stops.setdefault(job_id, threading.Event())
        try:
            job = Job.open(self.root / job_id)
        except VibeVoiceError:
            return  # deleted while it waited
        if job.manifest.status != "queued" or stop.is_set():
            return  # cancelled while it waited: it stays interrupted until resumed
        run_queued(job, progress=lambda p: self._progress(job_id, p), stop=stop)

    def _progress(self, job_id: str, progress: Progress) -> None:
        self._live[job_id] = progress
        self._notify()

    def _notify(self) -> None:
        with self._changed:
            self._changes += 1
            self._changed.notify_all()


def recover(root: Path) -> None:
    """Jobs that were queued or rendering when the server stopped become resumable, not lost."""
    for manifest in root.glob(f"*/{MANIFEST}"):
        try:
            job = Job.open(manifest.parent)
        except (VibeVoiceError, ValueError):
            continue
        if job.manifest.status in ACTIVE + ("pending",):
            job.set_status("interrupted", "the server stopped during this job; resume to continue")


# -- the service ---------------------------------------------------------------------------------------

class JobService:
    """Jobs under ``root``, rendered by ``executor`` (default: ``workers`` threads in this process)."""

    def __init__(self, root: Path | None = None, workers: int = 1, executor: Executor | None = None) -> None:
        self.root = Path(root or paths.jobs_dir())
        self.root.mkdir(parents=True, exist_ok=True)
        self.executor: Executor = executor or LocalExecutor(workers)
        self.executor.start(self.root)

    def submit(self, request: JobRequest, job_id: str | None = None, actor: str | None = None) -> JobInfo:
        """Validate and queue a job (or update job ``job_id``, re-rendering only what changed)."""
        paths.check_model_dir(request.settings.model_dir)  # a client names checkpoints from the allow-list only
        job_id = job_id or uuid.uuid4().hex[:12]
        directory = self._dir(job_id, must_exist=False)
        self._refuse_if_active(directory)
        with self.executor.holding(job_id):
            if (directory / MANIFEST).exists() and Job.open(directory).manifest.status in ACTIVE:
                raise Conflict(f"job {job_id} is still rendering; wait for it to finish or cancel it first")
            job = prepare(directory, request, actor=actor, job_id=job_id)
            job.set_status("queued")
        self.executor.enqueue(job)
        return self.info(job_id)

    def info(self, job_id: str) -> JobInfo:
        job = Job.open(self._dir(job_id))
        m = job.manifest
        if m.status in ACTIVE and self.executor.live(job_id) is None and (reason := self.executor.abandoned(job)):
            job = self._give_up(job_id, reason)
            m = job.manifest
        live = self.executor.live(job_id) if m.status in ACTIVE else None
        message = (self.executor.waiting(job) if m.status == "queued" else None) or m.message
        return JobInfo(
            id=job_id, title=m.title or first_words(job), status=m.status, message=message, priority=m.priority,
            done=sum(c.status == "done" for c in m.chunks), total=len(m.chunks),
            audio_seconds=sum(c.samples for c in m.chunks) / SAMPLE_RATE,
            eta_seconds=live.eta if live else None, current_line=live.line_index if live else None,
            speakers=job.script.speakers, voices={s: v.id for s, v in m.voices.items()},
            outputs=sorted(m.outputs), created=m.created,
            notes=[f"content filter: {f}" for f in m.content_flags] + [f"QA: {x}" for x in gate.summary(m.chunks)],
        )

    def _give_up(self, job_id: str, reason: str) -> Job:
        """Record that the executor gave the job up, unless someone took it meanwhile."""
        try:
            with self.executor.holding(job_id, wait=0.5):
                job = Job.open(self._dir(job_id))
                if job.manifest.status in ACTIVE:
                    job.set_status("failed", f"{reason}; finished chunks are kept, resume to retry")
                return job
        except Conflict:  # a worker holds it after all: it is not abandoned
            return Job.open(self._dir(job_id))

    def list(self) -> list[JobInfo]:
        found = []
        for manifest in self.root.glob(f"*/{MANIFEST}"):
            try:
                found.append(self.info(manifest.parent.name))
            except (VibeVoiceError, ValueError):
                continue  # a foreign or damaged folder is not a job; leave it alone
        return sorted(found, key=lambda j: j.created, reverse=True)

    def resume(self, job_id: str) -> JobInfo:
        with self.executor.holding(job_id):
            job = Job.open(self._dir(job_id))
            if job.manifest.status in ACTIVE:
                return self.info(job_id)
            job.set_status("queued")
        self.executor.enqueue(job)
        return self.info(job_id)

    def rerender_line(self, job_id: str, line_index: int, **changes) -> JobInfo:
        """Render one line again with a new delivery (``rate``, ``emotion``, ``intensity``, ``pause_after``…,
        any ``LinePlan`` field; None leaves a field as it is) and re-assemble; nothing else re-renders.

        The change is written into the job's plan (so it is kept, shown and resumable like any plan
        edit); only the chunks of that line get new keys, so only they are rendered.
        """
        job = Job.open(self._dir(job_id))
        if not 0 <= line_index < len(job.script.lines):
            raise BadInput(f"line {line_index + 1} does not exist; the script has {len(job.script.lines)} lines")
        # Without a plan every line was spoken with neutral defaults; spell those out so only this line changes.
        lines = len(job.script.lines)
        plan = job.manifest.plan or Plan(planner="user", lines=[LinePlan(line_index=i) for i in range(lines)])
        entries = {p.line_index: p for p in plan.lines}
        entry = entries.get(line_index) or LinePlan(line_index=line_index)
        changes = {k: v for k, v in changes.items() if v is not None and k != "line_index"}
        if "emotion" in changes:  # a person chose it: performed in full, like a hint
            changes.update(emotion_source="user", confidence=None)
        entries[line_index] = LinePlan.model_validate({**entry.model_dump(), **changes})
        plan = plan.model_copy(update={"lines": [entries[i] for i in sorted(entries)]})
        voices = {s: v.id for s, v in job.manifest.voices.items()}
        return self.submit(JobRequest(script=job.manifest.script, voices=voices, settings=job.manifest.settings,
                                      plan=plan, title=job.manifest.title, priority=job.manifest.priority),
                           job_id=job_id)

    def cancel(self, job_id: str) -> JobInfo:
        """Stop the job at the next chunk boundary; a queued job is taken off the queue at once."""
        self.executor.cancel(Job.open(self._dir(job_id)))
        return self.info(job_id)

    def delete(self, job_id: str, actor: str | None = None, timeout: float = 60) -> None:
        """Cancel the job, wait for its worker to let go, then remove it, so it cannot come back."""
        self.cancel(job_id)
        with self.executor.holding(job_id, wait=timeout):  # its worker lets go at its next chunk
            shutil.rmtree(self._dir(job_id))
        audit.record("job.deleted", actor=actor, job_id=job_id)

    def output_path(self, job_id: str, kind: str) -> Path:
        outputs = Job.open(self._dir(job_id)).manifest.outputs
        if kind not in outputs:
            raise JobNotFound(f"job {job_id} has no {kind!r} output (yet); it has: {', '.join(outputs) or 'none'}")
        return Path(outputs[kind])

    def wait(self, job_id: str, timeout: float = 600) -> JobInfo:
        deadline, seen = time.monotonic() + timeout, self.executor.wait_change(0)
        while self.info(job_id).status in ACTIVE and time.monotonic() < deadline:
            seen = self.executor.wait_change(0.5, seen)
        return self.info(job_id)

    def stream_mp3(self, job_id: str, poll: float = 0.1) -> Iterator[bytes]:
        """MP3 of the job as it renders: each chunk is sent, with its gap, as soon as it is on disk.

        Browsers play a progressive MP3 while it downloads, so listening starts after the first chunk.
        Placement matches the final file exactly (same ``layout``); only the loudness differs, since
        the final gain needs the whole programme.
        """
        encoder = mp3_encoder()
        job = Job.open(self._dir(job_id))
        yield provenance.tag_mp3(b"", job_provenance(job), job.manifest.title or first_words(job))
        for pcm in self.stream_pcm(job_id, poll):
            yield bytes(encoder.encode(pcm))
        yield bytes(encoder.flush())

    def stream_pcm(self, job_id: str, poll: float = 0.1) -> Iterator[bytes]:
        """The same timeline as ``stream_mp3``, as raw 16-bit PCM (24 kHz mono), one piece per chunk."""
        job, sent = Job.open(self._dir(job_id)), 0
        notice = spoken_notice(job)
        if notice and notice.where == "start":
            sent = notice.start + notice.audio.size
            yield pcm16(np.concatenate([np.zeros(notice.start, np.float32), fade(notice.audio) * PREVIEW_GAIN])).tobytes()
        for chunk_audio, start in self._chunks_in_order(job_id, poll):  # ends quietly if the job is deleted
            silence = np.zeros(max(0, start - sent), np.float32)
            sent = start + chunk_audio.size
            yield pcm16(np.concatenate([silence, fade(chunk_audio) * PREVIEW_GAIN])).tobytes()
        yield pcm16(np.zeros(SAMPLE_RATE // 2, np.float32)).tobytes()

    # -- reading back ----------------------------------------------------------------------------

    def _chunks_in_order(self, job_id: str, poll: float) -> Iterator[tuple[np.ndarray, int]]:
        index, seen = 0, self.executor.wait_change(0)
        while True:
            try:
                job = Job.open(self._dir(job_id))
            except NotFound:
                return  # deleted while someone listened
            m = job.manifest
            ready = len(m.chunks) if m.chunked else m.ahead  # while planning: the chunks keyed ahead
            if not m.chunked and index >= ready:  # the director is still planning these lines
                if m.status not in ACTIVE:
                    return
                seen = self.executor.wait_change(poll, seen)
                continue
            if index >= len(m.chunks):
                return
            if m.chunks[index].status == "done":
                # Every finished chunk this reading of the manifest shows, from one layout: a finished
                # job streams in one pass, not one manifest read and timeline per chunk.
                placed, _ = layout(job)
                while index < ready and m.chunks[index].status == "done":
                    try:
                        audio = job.chunk_audio(m.chunks[index])
                    except (OSError, RuntimeError, VibeVoiceError):
                        return  # its files went away (deleted): the stream ends where the audio ends
                    yield audio, placed[index][1]
                    index += 1
            elif m.status not in ACTIVE:
                return  # stopped or failed: end the stream where the audio ends
            else:
                seen = self.executor.wait_change(poll, seen)  # a finished chunk wakes it early

    @staticmethod
    def _refuse_if_active(directory: Path) -> None:
        if (directory / MANIFEST).exists() and Job.open(directory).manifest.status in ACTIVE:
            raise Conflict(f"job {directory.name} is still rendering; wait for it to finish or cancel it first")

    def _dir(self, job_id: str, must_exist: bool = True) -> Path:
        """The job's directory; ids are fixed-form hex, so no request can reach outside ``root``."""
        if not JOB_ID.match(job_id or ""):
            raise JobNotFound(f"{job_id[:40]!r} is not a job id" if isinstance(job_id, str) else "not a job id")
        directory = self.root / job_id
        if must_exist and not (directory / MANIFEST).exists():
            raise JobNotFound(f"no job {job_id}")
        return directory

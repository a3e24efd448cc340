"""The job queue every front end shares: the page, the HTTP API and (through ``render``) the CLI.

Jobs live on disk (one directory per job under the app's jobs directory), so the list survives a page
reload and a server restart; a job that was rendering when the server stopped comes back as
``interrupted`` and resumes from its last finished chunk. Rendering happens in a fixed number of
worker threads, so closing the browser tab never stops a job and the page simply reconnects to it.
"""

from __future__ import annotations

import queue
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from . import audit, delivery, paths, provenance, retake
from .engines import SAMPLE_RATE
from .export import export_job, fade, job_provenance, layout, mp3_encoder, pcm16, spoken_notice
from .plan.schema import LinePlan, Plan
from .plan.validate import load_plan
from .render import Job, Progress, RenderError, RenderSettings
from .script import MAX_SCRIPT_BYTES, parse_script
from .voices import assign_voices, load_templates, slug

ACTIVE = ("queued", "rendering", "rendered")  # statuses of a job a worker still owns
JOB_ID = re.compile(r"^[0-9a-f]{12}$")
PREVIEW_GAIN = 10 ** (6 / 20)  # the stream is heard before loudness is measured: a fixed, safe lift


class JobRequest(BaseModel):
    script: str = Field(max_length=MAX_SCRIPT_BYTES, description="the dialogue script")
    voices: dict[str, str] = Field(default_factory=dict, description="speaker → voice template id")
    settings: RenderSettings = Field(default_factory=RenderSettings)
    plan: Plan | None = Field(default=None, description="a (possibly edited) plan; used as given, after validation")
    planner: str | None = Field(default=None, description="auto, rules, local, http or none (default: "
                                "$VIBEVOICE_PLANNER or auto); ignored when a plan is given")
    speaker_hints: dict[str, str] = Field(default_factory=dict, description="speaker → delivery hint for the director")
    title: str = Field(default="", max_length=120)


class JobInfo(BaseModel):
    id: str
    title: str
    status: str
    message: str | None
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


class JobNotFound(KeyError):
    pass


class JobService:
    def __init__(self, root: Path | None = None, workers: int = 1) -> None:
        self.root = Path(root or paths.jobs_dir())
        self.root.mkdir(parents=True, exist_ok=True)
        self._queue: queue.Queue[str] = queue.Queue()
        self._live: dict[str, Progress] = {}
        self._stops: dict[str, threading.Event] = {}
        self._changed = threading.Condition()
        self._recover()
        for n in range(workers):
            threading.Thread(target=self._work, name=f"render-worker-{n}", daemon=True).start()

    # -- the public API ------------------------------------------------------------------------------

    def submit(self, request: JobRequest, job_id: str | None = None, actor: str | None = None) -> JobInfo:
        """Validate and queue a job (or update job ``job_id``, re-rendering only what changed).

        Raises ``ScriptError`` / ``VoiceError`` / ``ValueError`` for bad input before anything is queued.
        """
        script = parse_script(request.script)
        voices = assign_voices(script.speakers, script.speaker_languages(), request.voices, load_templates())
        job_id = job_id or uuid.uuid4().hex[:12]
        directory = self._dir(job_id, must_exist=False)
        plan = load_plan(request.plan.model_dump(), script) if request.plan else None
        job = Job.create(directory, request.script, voices, request.settings, plan, actor=actor, job_id=job_id)
        if request.title:
            job.manifest.title = request.title
        job.manifest.planner = None if plan else (request.planner or delivery.default_planner())
        job.manifest.speaker_hints = request.speaker_hints
        job.manifest.status, job.manifest.message = "queued", None
        job.save()
        self._enqueue(job_id)
        return self.info(job_id)

    def info(self, job_id: str) -> JobInfo:
        job = Job.open(self._dir(job_id))
        m = job.manifest
        live = self._live.get(job_id)
        done = sum(c.status == "done" for c in m.chunks)
        return JobInfo(
            id=job_id, title=m.title or _first_words(job), status=m.status, message=m.message, done=done,
            total=len(m.chunks), audio_seconds=sum(c.samples for c in m.chunks) / SAMPLE_RATE,
            eta_seconds=live.eta if live else None, current_line=live.line_index if live else None,
            speakers=job.script.speakers, voices={s: v.id for s, v in m.voices.items()},
            outputs=sorted(m.outputs), created=m.created,
            notes=[f"content filter: {f}" for f in m.content_flags] + [f"QA: {x}" for x in retake.summary(m.chunks)],
        )

    def list(self) -> list[JobInfo]:
        found = []
        for manifest in self.root.glob("*/job.json"):
            try:
                found.append(self.info(manifest.parent.name))
            except (RenderError, ValueError):
                continue  # a foreign or damaged folder is not a job; leave it alone
        return sorted(found, key=lambda j: j.created, reverse=True)

    def resume(self, job_id: str) -> JobInfo:
        job = Job.open(self._dir(job_id))
        if job.manifest.status in ACTIVE:
            return self.info(job_id)
        job.manifest.status, job.manifest.message = "queued", None
        job.save()
        self._enqueue(job_id)
        return self.info(job_id)

    def rerender_line(self, job_id: str, line_index: int, rate: float | None = None,
                      emotion: str | None = None) -> JobInfo:
        """Render one line again with a new pace or emotion and re-assemble; nothing else re-renders.

        The change is written into the job's plan (so it is kept, shown and resumable like any plan
        edit); only the chunks of that line get new keys, so only they are rendered.
        """
        job = Job.open(self._dir(job_id))
        if job.manifest.status in ACTIVE:
            raise ValueError("the job is still rendering; wait for it to finish or cancel it first")
        if not 0 <= line_index < len(job.script.lines):
            raise ValueError(f"line {line_index + 1} does not exist; the script has {len(job.script.lines)} lines")
        # Without a plan every line was spoken with neutral defaults; spell those out so only this line changes.
        plan = job.manifest.plan or Plan(planner="user", lines=[LinePlan(line_index=i) for i in range(len(job.script.lines))])
        entries = {p.line_index: p for p in plan.lines}
        entry = entries.get(line_index) or LinePlan(line_index=line_index)
        changes = {k: v for k, v in (("rate", rate), ("emotion", emotion)) if v is not None}
        entries[line_index] = LinePlan.model_validate({**entry.model_dump(), **changes})
        plan = plan.model_copy(update={"lines": [entries[i] for i in sorted(entries)]})
        voices = {s: v.id for s, v in job.manifest.voices.items()}
        return self.submit(JobRequest(script=job.manifest.script, voices=voices, settings=job.manifest.settings,
                                      plan=plan, title=job.manifest.title), job_id=job_id)

    def cancel(self, job_id: str) -> JobInfo:
        self._dir(job_id)
        self._stops.setdefault(job_id, threading.Event()).set()
        job = Job.open(self._dir(job_id))
        if job.manifest.status == "queued":
            job.manifest.status, job.manifest.message = "interrupted", "cancelled; resume to continue"
            job.save()
        return self.info(job_id)

    def delete(self, job_id: str, actor: str | None = None) -> None:
        self.cancel(job_id)
        shutil.rmtree(self._dir(job_id))
        audit.record("job.deleted", actor=actor, job_id=job_id)

    def output_path(self, job_id: str, kind: str) -> Path:
        outputs = Job.open(self._dir(job_id)).manifest.outputs
        if kind not in outputs:
            raise JobNotFound(f"job {job_id} has no {kind!r} output (yet); it has: {', '.join(outputs) or 'none'}")
        return Path(outputs[kind])

    def wait(self, job_id: str, timeout: float = 600) -> JobInfo:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.info(job_id).status in ACTIVE and time.monotonic() < deadline:
                self._changed.wait(timeout=0.5)
        return self.info(job_id)

    def stream_mp3(self, job_id: str, poll: float = 0.1) -> Iterator[bytes]:
        """MP3 of the job as it renders: each chunk is sent, with its gap, as soon as it is on disk.

        Browsers play a progressive MP3 while it downloads, so listening starts after the first chunk.
        Placement matches the final file exactly (same ``layout``); only the loudness differs, since
        the final gain needs the whole programme.
        """
        encoder, sent = mp3_encoder(), 0
        job = Job.open(self._dir(job_id))
        yield provenance.tag_mp3(b"", job_provenance(job), job.manifest.title or _first_words(job))
        notice = spoken_notice(job)
        if notice and notice.where == "start":
            sent = notice.start + notice.audio.size
            audio = np.concatenate([np.zeros(notice.start, np.float32), fade(notice.audio) * PREVIEW_GAIN])
            yield bytes(encoder.encode(pcm16(audio).tobytes()))
        for chunk_audio, start in self._chunks_in_order(job_id, poll):
            silence = np.zeros(max(0, start - sent), np.float32)
            audio = np.concatenate([silence, fade(chunk_audio) * PREVIEW_GAIN])
            sent = start + chunk_audio.size
            yield bytes(encoder.encode(pcm16(audio).tobytes()))
        yield bytes(encoder.encode(pcm16(np.zeros(SAMPLE_RATE // 2, np.float32)).tobytes()) + encoder.flush())

    # -- workers -------------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            stop = self._stops.setdefault(job_id, threading.Event())
            stop.clear()
            try:
                job = self._direct(Job.open(self._dir(job_id)))
                job.render(progress=lambda p: self._progress(job_id, p), stop=stop)
                name = slug(job.manifest.title or _first_words(job))[:40].strip("-") or "podcast"
                export_job(job, job.dir / "out" / f"{name}.mp3", stems=len(job.script.speakers) > 1)
            except KeyboardInterrupt:
                pass  # cancelled: the renderer already marked the job interrupted
            except Exception:  # noqa: BLE001 — the manifest holds the message; the worker must live on
                pass
            finally:
                self._live.pop(job_id, None)
                self._notify()

    def _direct(self, job: Job) -> Job:
        """Run the director once, in the worker (so submitting stays instant), then key chunks by its plan."""
        m = job.manifest
        if not m.planner or m.planner == delivery.NO_PLANNER or m.plan is not None:
            return job
        plan = delivery.direct(job.script, m.planner, m.speaker_hints)
        updated = Job.create(job.dir, m.script, m.voices, m.settings, plan)
        updated.manifest.title, updated.manifest.planner = m.title, m.planner
        updated.manifest.speaker_hints, updated.manifest.status = m.speaker_hints, "queued"
        updated.save()
        return updated

    def _progress(self, job_id: str, progress: Progress) -> None:
        self._live[job_id] = progress
        self._notify()

    def _chunks_in_order(self, job_id: str, poll: float) -> Iterator[tuple[np.ndarray, int]]:
        index = 0
        while True:
            job = Job.open(self._dir(job_id))
            chunks = job.manifest.chunks
            if index >= len(chunks):
                return
            chunk = chunks[index]
            if chunk.status == "done":
                placed, _ = layout(job)
                yield job.chunk_audio(chunk), placed[index][1]
                index += 1
            elif job.manifest.status not in ACTIVE:
                return  # stopped or failed: end the stream where the audio ends
            else:
                time.sleep(poll)

    def _recover(self) -> None:
        """Jobs that were queued or rendering when the server stopped become resumable, not lost."""
        for manifest in self.root.glob("*/job.json"):
            try:
                job = Job.open(manifest.parent)
            except (RenderError, ValueError):
                continue
            if job.manifest.status in ACTIVE + ("pending",):
                job.manifest.status = "interrupted"
                job.manifest.message = "the server stopped during this job; resume to continue"
                job.save()

    def _enqueue(self, job_id: str) -> None:
        self._queue.put(job_id)
        self._notify()

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _dir(self, job_id: str, must_exist: bool = True) -> Path:
        """The job's directory; ids are fixed-form hex, so no request can reach outside ``root``."""
        if not JOB_ID.match(job_id or ""):
            raise JobNotFound(f"{job_id!r} is not a job id")
        directory = self.root / job_id
        if must_exist and not (directory / "job.json").exists():
            raise JobNotFound(f"no job {job_id}")
        return directory


def _first_words(job: Job) -> str:
    text = job.script.lines[0].text if job.script.lines else ""
    return text[:48] + ("…" if len(text) > 48 else "")

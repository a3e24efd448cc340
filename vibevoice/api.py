"""HTTP API: OpenAI-compatible speech plus job endpoints for long scripts, over the shared job queue.

``POST /v1/audio/speech`` accepts what OpenAI's speech API accepts (model, input, voice,
response_format, speed), so existing clients work unchanged; a tagged multi-speaker script may be sent
as ``input`` with an extra ``voices`` map. Long scripts go through ``/v1/jobs``: create, watch, stream
while rendering, download, resume, cancel. Every error is a 4xx with a readable ``detail``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from . import __version__
from .cloning import clone_voice
from .content_filter import ContentBlocked
from .content_filter import Mode as FilterMode
from .content_filter import check as check_content
from .engines import SAMPLE_RATE
from .jobs import JobInfo, JobNotFound, JobRequest, JobService
from .plan.schema import Emotion
from .provenance import DISCLOSURE
from .render import RenderSettings
from .script import MAX_SCRIPT_BYTES, ScriptError, parse_script
from .voices import CONSENT_STATEMENT, VoiceError, load_templates

MAX_BODY_BYTES = MAX_SCRIPT_BYTES + 64_000
MAX_CLIP_BYTES = 30_000_000 + 64_000  # a few minutes of WAV is plenty for a voice reference
DRAIN_BYTES = 32_000_000
# OpenAI's voice names, mapped to the closest preset, so clients written for OpenAI sound sensible.
OPENAI_VOICES = {"onyx": "deep-male", "nova": "bright-female", "shimmer": "light-female", "fable": "warm-female",
                 "alloy": "mid-blend", "echo": "soft-male-blend", "ash": "deep-male", "coral": "warm-female",
                 "sage": "mid-blend", "ballad": "soft-male-blend", "verse": "bright-female"}
MEDIA = {"mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac", "opus": "audio/ogg", "pcm": "audio/pcm",
         "srt": "application/x-subrip", "vtt": "text/vtt"}


class SpeechRequest(BaseModel):
    model: str = Field(default="kokoro", description="accepted for compatibility; the voice decides the engine")
    input: str = Field(min_length=1, max_length=MAX_SCRIPT_BYTES)
    voice: str = Field(default="deep-male", description="a voice template id or an OpenAI voice name")
    response_format: Literal["mp3", "wav", "opus", "flac", "pcm"] = "mp3"
    speed: float = Field(default=1.0, ge=0.5, le=2.0)
    voices: dict[str, str] = Field(default_factory=dict, description="speaker → voice id for tagged scripts")
    instructions: str | None = Field(default=None, description="accepted for compatibility; not used")


class RerenderRequest(BaseModel):
    rate: float | None = Field(default=None, ge=0.7, le=1.3, description="speaking-rate factor for this line")
    emotion: Emotion | None = None


class CheckRequest(BaseModel):
    script: str = Field(max_length=MAX_SCRIPT_BYTES)
    content_filter: FilterMode | None = Field(default=None, description="default: the server's mode")


def create_api(service: JobService) -> FastAPI:
    app = FastAPI(title="VibeVoice WebUI", version=__version__,
                  description="Long-form multi-speaker dialogue audio: OpenAI-compatible speech and resumable jobs.")
    app.state.jobs = service

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        size = int(request.headers.get("content-length") or 0)
        limit = MAX_CLIP_BYTES if request.url.path == "/v1/voices/clone" else MAX_BODY_BYTES
        if size > limit:
            if size <= DRAIN_BYTES:  # read it away, so the client gets the 413 instead of a reset connection
                async for _ in request.stream():
                    pass
            what = "reference clips are limited to" if limit == MAX_CLIP_BYTES else "scripts are limited to"
            return JSONResponse({"detail": f"request body over {limit} bytes; {what} {limit - 64_000} bytes"},
                                status_code=413)
        return await call_next(request)

    app.exception_handler(ScriptError)(_script_error)
    app.exception_handler(ContentBlocked)(_content_blocked)
    app.exception_handler(VoiceError)(_bad_request)
    app.exception_handler(ValueError)(_bad_request)
    app.exception_handler(JobNotFound)(_not_found)
    app.include_router(_router())
    return app


def _jobs(request: Request) -> JobService:
    return request.app.state.jobs


def _router() -> APIRouter:
    r = APIRouter(prefix="/v1")

    @r.post("/audio/speech", tags=["speech"], response_class=Response,
            responses={200: {"content": {m: {} for m in ("audio/mpeg", "audio/wav", "audio/flac", "audio/ogg")}}})
    def speech(body: SpeechRequest, request: Request, jobs: JobService = Depends(_jobs)):
        """OpenAI-compatible text to speech. MP3 and PCM stream while rendering; others come whole."""
        voice = OPENAI_VOICES.get(body.voice, body.voice)
        script = body.input if _has_tags(body.input) else f"[Narrator] {body.input}"
        voices = body.voices or ({} if _has_tags(body.input) else {"Narrator": voice})
        info = jobs.submit(JobRequest(script=script, voices=voices, settings=RenderSettings(speed=body.speed)),
                           actor=_actor(request))
        if body.response_format == "mp3":
            return StreamingResponse(jobs.stream_mp3(info.id), media_type=MEDIA["mp3"])
        info = jobs.wait(info.id)
        if info.status != "done":
            raise HTTPException(500, f"rendering failed: {info.message}")
        if body.response_format in ("wav", "flac"):  # the exported files, with their provenance tags
            return Response(jobs.output_path(info.id, body.response_format).read_bytes(),
                            media_type=MEDIA[body.response_format])
        audio, _ = sf.read(jobs.output_path(info.id, "wav"), dtype="int16")
        return Response(_encode(audio, body.response_format), media_type=MEDIA[body.response_format])

    @r.post("/jobs", status_code=201, response_model=JobInfo, tags=["jobs"])
    def create_job(body: JobRequest, request: Request, jobs: JobService = Depends(_jobs)):
        """Queue a script for rendering; returns at once with the job's id and progress."""
        return jobs.submit(body, actor=_actor(request))

    @r.get("/jobs", response_model=list[JobInfo], tags=["jobs"])
    def list_jobs(jobs: JobService = Depends(_jobs)):
        return jobs.list()

    @r.get("/jobs/{job_id}", response_model=JobInfo, tags=["jobs"])
    def job_status(job_id: str, jobs: JobService = Depends(_jobs)):
        return jobs.info(job_id)

    @r.put("/jobs/{job_id}", response_model=JobInfo, tags=["jobs"])
    def update_job(job_id: str, body: JobRequest, request: Request, jobs: JobService = Depends(_jobs)):
        """Replace the script/voices/settings; only lines whose audio would change are re-rendered."""
        jobs.info(job_id)
        return jobs.submit(body, job_id=job_id, actor=_actor(request))

    @r.post("/jobs/{job_id}/resume", response_model=JobInfo, tags=["jobs"])
    def resume_job(job_id: str, jobs: JobService = Depends(_jobs)):
        return jobs.resume(job_id)

    @r.post("/jobs/{job_id}/lines/{line}/rerender", response_model=JobInfo, tags=["jobs"])
    def rerender_line(job_id: str, line: int, body: RerenderRequest, jobs: JobService = Depends(_jobs)):
        """Re-render one line (1-based, as in the subtitles) with a new pace or emotion, then re-assemble."""
        return jobs.rerender_line(job_id, line - 1, rate=body.rate, emotion=body.emotion)

    @r.post("/jobs/{job_id}/cancel", response_model=JobInfo, tags=["jobs"])
    def cancel_job(job_id: str, jobs: JobService = Depends(_jobs)):
        return jobs.cancel(job_id)

    @r.delete("/jobs/{job_id}", status_code=204, tags=["jobs"])
    def delete_job(job_id: str, request: Request, jobs: JobService = Depends(_jobs)):
        jobs.delete(job_id, actor=_actor(request))

    @r.get("/jobs/{job_id}/stream", tags=["jobs"], response_class=StreamingResponse,
           responses={200: {"content": {"audio/mpeg": {}}}})
    def stream_job(job_id: str, jobs: JobService = Depends(_jobs)):
        """Progressive MP3 of the job while it renders (plays in a browser's audio element)."""
        jobs.info(job_id)
        return StreamingResponse(jobs.stream_mp3(job_id), media_type=MEDIA["mp3"])

    @r.get("/jobs/{job_id}/files/{kind}", tags=["jobs"], response_class=FileResponse)
    def download(job_id: str, kind: str, jobs: JobService = Depends(_jobs)):
        """A finished output: wav, mp3, srt, vtt or stem:<speaker>."""
        path = jobs.output_path(job_id, kind)
        suffix = path.suffix.lstrip(".")
        return FileResponse(path, media_type=MEDIA.get(suffix, "application/octet-stream"), filename=path.name)

    @r.get("/voices", tags=["voices"])
    def voices():
        return [t.model_dump() for t in load_templates().values()]

    @r.post("/voices/clone", status_code=201, tags=["voices"])
    async def clone(request: Request, clip: UploadFile, name: str = Form(min_length=1, max_length=40),
                    consent: bool = Form(False, description=f"required: {CONSENT_STATEMENT}")):
        """Save a reference recording as a cloning voice; refused (422) unless ``consent`` is true."""
        data = await clip.read()
        template = clone_voice(name, data, Path(clip.filename or "").suffix, consent, _actor(request))
        return template.model_dump()

    @r.post("/scripts/check", tags=["scripts"])
    def check(body: CheckRequest):
        """Parse a script: speakers, lines and estimated duration, or 422 with every problem."""
        script = parse_script(body.script)
        return {"speakers": script.speakers, "lines": len(script.lines),
                "estimated_seconds": round(script.estimated_seconds(), 1),
                "content": [f.model_dump() for f in check_content(script, body.content_filter)]}

    @r.get("/health", tags=["meta"])
    def health():
        return {"status": "ok", "version": __version__}

    return r


def _actor(request: Request) -> str:
    """Who asked, for the local audit log: the client's address (the API has no accounts)."""
    return f"api:{request.client.host if request.client else 'unknown'}"


def _has_tags(text: str) -> bool:
    return parse_script(text).speakers != ["Narrator"]


def _encode(audio: np.ndarray, fmt: str) -> bytes:
    if fmt == "pcm":  # OpenAI's raw PCM: 24 kHz, 16-bit signed, little-endian, mono (no room for tags)
        return audio.astype("<i2").tobytes()
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", SAMPLE_RATE, 1, "OPUS", format="OGG") as out:
        out.comment = DISCLOSURE  # Ogg carries Vorbis comments too
        out.write(audio)
    return buffer.getvalue()


async def _script_error(request: Request, error: ScriptError) -> JSONResponse:
    return JSONResponse({"detail": str(error), "problems": [p.model_dump() for p in error.problems]}, 422)


async def _content_blocked(request: Request, error: ContentBlocked) -> JSONResponse:
    return JSONResponse({"detail": str(error), "findings": [f.model_dump() for f in error.findings]}, 422)


async def _bad_request(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, 422)


async def _not_found(request: Request, error: JobNotFound) -> JSONResponse:
    return JSONResponse({"detail": error.args[0] if error.args else "not found"}, 404)

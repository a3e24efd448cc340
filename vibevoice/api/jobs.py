"""``/v1/jobs``: long scripts as resumable jobs — create, list, watch, stream, download, edit, resume,
re-render a line, cancel, delete."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, Field

from ..job.service import JobInfo, JobRequest, JobService
from ..plan.schema import Emotion
from .deps import actor, job_service
from .speech import MEDIA, PCM_HEADERS

router = APIRouter(prefix="/jobs", tags=["jobs"])


class RerenderRequest(BaseModel):
    rate: float | None = Field(default=None, ge=0.7, le=1.3, description="speaking-rate factor for this line")
    emotion: Emotion | None = None
    intensity: float | None = Field(default=None, ge=0.0, le=1.0)
    pause_before: float | None = Field(default=None, ge=0.0, le=10.0, description="seconds")
    pause_after: float | None = Field(default=None, ge=0.0, le=10.0, description="seconds")


@router.post("", status_code=201, response_model=JobInfo)
def create_job(body: JobRequest, who: str = Depends(actor), jobs: JobService = Depends(job_service)):
    """Queue a script for rendering; returns at once with the job's id and progress."""
    return jobs.submit(body, actor=who)


@router.get("", response_model=list[JobInfo])
def list_jobs(jobs: JobService = Depends(job_service)):
    return jobs.list()


@router.get("/{job_id}", response_model=JobInfo)
def job_status(job_id: str, jobs: JobService = Depends(job_service)):
    return jobs.info(job_id)


@router.put("/{job_id}", response_model=JobInfo)
def update_job(job_id: str, body: JobRequest, who: str = Depends(actor), jobs: JobService = Depends(job_service)):
    """Replace the script/voices/settings; only lines whose audio would change are re-rendered (409 while
    the job is still rendering)."""
    jobs.info(job_id)
    return jobs.submit(body, job_id=job_id, actor=who)


@router.post("/{job_id}/resume", response_model=JobInfo)
def resume_job(job_id: str, jobs: JobService = Depends(job_service)):
    return jobs.resume(job_id)


@router.post("/{job_id}/lines/{line}/rerender", response_model=JobInfo)
def rerender_line(job_id: str, line: int, body: RerenderRequest, jobs: JobService = Depends(job_service)):
    """Re-render one line (1-based, as in the subtitles) with a new pace or emotion, then re-assemble."""
    return jobs.rerender_line(job_id, line - 1, **body.model_dump())


@router.post("/{job_id}/cancel", response_model=JobInfo)
def cancel_job(job_id: str, jobs: JobService = Depends(job_service)):
    return jobs.cancel(job_id)


@router.delete("/{job_id}", status_code=204)
def delete_job(job_id: str, who: str = Depends(actor), jobs: JobService = Depends(job_service)):
    jobs.delete(job_id, actor=who)


@router.get("/{job_id}/stream", response_class=StreamingResponse,
            responses={200: {"content": {"audio/mpeg": {}, "audio/pcm": {}}}})
def stream_job(job_id: str, format: Literal["mp3", "pcm"] = "mp3", jobs: JobService = Depends(job_service)):
    """The job's audio while it renders: progressive MP3 (plays in an audio element), or ``format=pcm``:
    raw 16-bit little-endian mono at ``X-Sample-Rate``, which the page plays through Web Audio the
    moment the first chunk arrives (a browser buffers seconds of MP3 before it starts)."""
    jobs.info(job_id)
    if format == "pcm":
        return StreamingResponse(jobs.stream_pcm(job_id), media_type=MEDIA["pcm"],
                                 headers={**PCM_HEADERS, "Cache-Control": "no-store"})
    return StreamingResponse(jobs.stream_mp3(job_id), media_type=MEDIA["mp3"])


@router.get("/{job_id}/files/{kind}", response_class=FileResponse)
def download(job_id: str, kind: str, jobs: JobService = Depends(job_service)):
    """A finished output: wav, mp3, flac, srt, vtt or stem:<speaker>."""
    path = jobs.output_path(job_id, kind)
    suffix = path.suffix.lstrip(".")
    return FileResponse(path, media_type=MEDIA.get(suffix, "application/octet-stream"), filename=path.name)

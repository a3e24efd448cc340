"""HTTP API: OpenAI-compatible speech plus job endpoints for long scripts, over the shared job service.

One router per resource — ``speech`` (``POST /v1/audio/speech``, what OpenAI's speech API accepts, so
existing clients work unchanged), ``jobs`` (create, watch, stream while rendering, download, edit,
resume, cancel, delete), ``voices`` (list, clone with consent) and ``scripts`` (check) — and the
mapping of the project's error family to HTTP statuses in one place (``errors``).
"""

from __future__ import annotations

from fastapi import FastAPI

from .. import __version__
from ..job.service import JobService
from . import errors, jobs, scripts, speech, voices


def create_api(service: JobService) -> FastAPI:
    app = FastAPI(title="VibeVoice WebUI", version=__version__,
                  description="Long-form multi-speaker dialogue audio: OpenAI-compatible speech and resumable jobs.")
    app.state.jobs = service
    errors.install(app)
    for module in (speech, jobs, voices, scripts):
        app.include_router(module.router, prefix="/v1")
    return app

"""The project's error family → HTTP statuses, in one place, plus the request-size limit.

``BadInput`` → 422 (script problems with line and column, content-filter findings), ``NotFound`` →
404, ``Conflict`` → 409, ``Unavailable`` → 503. Anything else is a bug: a 500 whose body carries an
error id that is also in the server log, so a user can quote it and nobody mistakes it for their fault.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..content_filter import ContentBlocked
from ..errors import BadInput, Conflict, NotFound, Unavailable, VibeVoiceError
from ..script import MAX_SCRIPT_BYTES, ScriptError

log = logging.getLogger("vibevoice.api")
MAX_BODY_BYTES = MAX_SCRIPT_BYTES + 64_000
MAX_CLIP_BYTES = 30_000_000 + 64_000  # a few minutes of WAV is plenty for a voice reference
DRAIN_BYTES = 32_000_000
STATUS = ((BadInput, 422), (NotFound, 404), (Conflict, 409), (Unavailable, 503))


def install(app: FastAPI) -> None:
    app.middleware("http")(_limit_body)
    app.exception_handler(VibeVoiceError)(_known)
    app.exception_handler(Exception)(_unexpected)


def status_of(error: VibeVoiceError) -> int:
    return next((status for kind, status in STATUS if isinstance(error, kind)), 500)


async def _known(request: Request, error: VibeVoiceError) -> JSONResponse:
    body: dict = {"detail": str(error)}
    if isinstance(error, ScriptError):
        body["problems"] = [p.model_dump() for p in error.problems]
    elif isinstance(error, ContentBlocked):
        body["findings"] = [f.model_dump() for f in error.findings]
    status = status_of(error)
    if status == 500:
        return await _unexpected(request, error)
    return JSONResponse(body, status)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    error_id = uuid.uuid4().hex[:8]
    log.error("error %s on %s %s", error_id, request.method, request.url.path, exc_info=error)
    return JSONResponse({"detail": f"internal error {error_id}: this is a bug in the server, not in your request; "
                                   "the server log has the details", "error_id": error_id}, 500)


async def _limit_body(request: Request, call_next):
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

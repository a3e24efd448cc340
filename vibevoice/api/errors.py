"""The project's error family → HTTP statuses, in one place; request validation answered briefly.

``BadInput`` → 422 (script problems with line and column, content-filter findings), ``NotFound`` →
404, ``Conflict`` → 409, ``Unavailable`` → 503. Anything else is a bug: a 500 whose body carries an
error id that is also in the server log, so a user can quote it and nobody mistakes it for their fault.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..content_filter import ContentBlocked
from ..errors import BadInput, Conflict, NotFound, Unavailable, VibeVoiceError, field_problems
from ..script import ScriptError
from .guard import TooLarge

log = logging.getLogger("vibevoice.api")
STATUS = ((TooLarge, 413), (BadInput, 422), (NotFound, 404), (Conflict, 409), (Unavailable, 503))


def install(app: FastAPI) -> None:
    app.exception_handler(VibeVoiceError)(_known)
    app.exception_handler(RequestValidationError)(_invalid)
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


async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
    """Which field is wrong and what was expected — never the value sent (it may be megabytes)."""
    problems, detail = field_problems(error.errors())
    return JSONResponse({"detail": detail, "problems": problems}, 422)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    error_id = uuid.uuid4().hex[:8]
    log.error("error %s on %s %s", error_id, request.method, request.url.path, exc_info=error)
    return JSONResponse({"detail": f"internal error {error_id}: this is a bug in the server, not in your request; "
                                   "the server log has the details", "error_id": error_id}, 500)

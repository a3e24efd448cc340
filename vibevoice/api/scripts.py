"""``/v1/scripts/check`` (parse a script, estimate it, run the content filter) and ``/v1/health``."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from .. import __version__
from ..content_filter import Mode as FilterMode
from ..content_filter import check as check_content
from ..script import MAX_SCRIPT_BYTES, parse_script

router = APIRouter()


class CheckRequest(BaseModel):
    script: str = Field(max_length=MAX_SCRIPT_BYTES)
    content_filter: FilterMode | None = Field(default=None, description="default: the server's mode")


@router.post("/scripts/check", tags=["scripts"])
def check(body: CheckRequest):
    """Parse a script: speakers, lines and estimated duration, or 422 with every problem."""
    script = parse_script(body.script)
    return {"speakers": script.speakers, "lines": len(script.lines),
            "estimated_seconds": round(script.estimated_seconds(), 1),
            "content": [f.model_dump() for f in check_content(script, body.content_filter)]}


@router.get("/health", tags=["meta"])
def health():
    return {"status": "ok", "version": __version__}

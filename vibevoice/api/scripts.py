"""``/v1/scripts/check`` (parse a script, estimate it, run the content filter) and ``/v1/health``."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field, field_validator

from .. import __version__
from ..content_filter import Finding
from ..content_filter import Mode as FilterMode
from ..content_filter import check as check_content
from ..script import MAX_SCRIPT_BYTES, check_text, parse_script

router = APIRouter()


class CheckRequest(BaseModel):
    script: str = Field(max_length=MAX_SCRIPT_BYTES)
    content_filter: FilterMode | None = Field(default=None, description="default: the server's mode")

    _script_characters = field_validator("script", mode="before")(check_text)


class CheckResult(BaseModel):
    speakers: list[str]
    lines: int
    estimated_seconds: float
    content: list[Finding] = Field(description="the content filter's findings (blocks and flags)")


class Health(BaseModel):
    status: str
    version: str


@router.post("/scripts/check", tags=["scripts"], response_model=CheckResult)
def check(body: CheckRequest):
    """Parse a script: speakers, lines and estimated duration, or 422 with every problem."""
    script = parse_script(body.script)
    return CheckResult(speakers=script.speakers, lines=len(script.lines),
                       estimated_seconds=round(script.estimated_seconds(), 1),
                       content=check_content(script, body.content_filter))


@router.get("/health", tags=["meta"], response_model=Health)
def health():
    return Health(status="ok", version=__version__)

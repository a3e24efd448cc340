"""One error family: every failure the project raises on purpose is a ``VibeVoiceError``.

The subclass says whose problem it is, and so how a front end answers (the API maps them in one
place, ``api.errors``): bad input (422: the user can fix the request), not found (404), conflict
(409: the request is fine but the job's state forbids it now), unavailable (503: an optional
component or the environment is missing). Anything else that escapes is a bug in the project: a 500
with an error id, never disguised as a client mistake.

``BadInput`` is also a ``ValueError`` and ``NotFound`` a ``LookupError``, so callers written against
the built-in kinds keep working.
"""

from __future__ import annotations

MAX_FIELD_PROBLEMS = 20  # a reply names this many invalid fields at most


def field_problems(errors: list[dict]) -> tuple[list[dict], str]:
    """Pydantic's validation errors as ``[{"field", "problem"}]`` plus one readable sentence: the field
    and what was expected, never the value sent (it may be megabytes) nor a link to pydantic's docs."""
    problems = []
    for item in errors[:MAX_FIELD_PROBLEMS]:
        loc, message = list(item.get("loc", ())), str(item.get("msg", "invalid"))[:200]
        if item.get("type") == "json_invalid":  # the location is a character offset, not a field
            loc, message = [], f"not valid JSON at character {loc[-1] if loc else '?'}"
        where = ".".join(str(part) for part in loc if part != "body") or "body"
        problems.append({"field": where[:120], "problem": message})
    more = len(errors) - len(problems)
    sentence = "; ".join(f"{p['field']}: {p['problem']}" for p in problems) + (f"; and {more} more" if more > 0 else "")
    return problems, sentence


class VibeVoiceError(Exception):
    """Something the project detected and can explain; the message is meant for the user."""


class BadInput(VibeVoiceError, ValueError):
    """The request itself is wrong (a script, a voice, a setting, a clip); fixing it fixes the error."""


class NotFound(VibeVoiceError, LookupError):
    """What the request names does not exist (a job, an output, a voice)."""

    def __str__(self) -> str:  # LookupError's KeyError cousin quotes its message; this one never does
        return str(self.args[0]) if self.args else "not found"


class Conflict(VibeVoiceError):
    """The request is valid but the target's current state forbids it (e.g. editing a rendering job)."""


class Unavailable(VibeVoiceError, RuntimeError):
    """An optional component, model or device this request needs is not installed or not reachable."""


class RenderFailed(VibeVoiceError, RuntimeError):
    """A render stopped; the job directory is intact and resuming continues it."""


class Cancelled(VibeVoiceError):
    """The job was cancelled (its stop event was set); finished chunks are kept for a resume."""

"""What a job must pass before anything is written, run once per submission.

Consent for every cloned voice, a voice per speaker that suits the engine that will speak it, the QA
models when QA is on, and the content filter (with the optional LLM review). A block is audited and
raised as ``ContentBlocked``; flags come back to be kept in the manifest.
"""

from __future__ import annotations

from .. import audit
from ..cloning import require_consent
from ..content_filter import ContentBlocked, Finding, enforce
from ..content_review import review
from ..errors import BadInput
from ..qa.gate import require_models
from ..script import Script
from ..voices import VoiceTemplate
from .chunks import Renderer
from .model import Manifest, RenderSettings


def check_voices(script: Script, voices: dict[str, VoiceTemplate], renderer: Renderer) -> None:
    """Every speaker has a voice its engine accepts; raise ``BadInput`` naming the speaker otherwise."""
    missing = [s for s in script.speakers if s not in voices]
    if missing:
        raise BadInput(f"no voice for speaker(s) {', '.join(missing)}")
    for speaker in script.speakers:
        try:
            renderer.engine(voices[speaker]).check_voice(voices[speaker])
        except BadInput as err:
            raise BadInput(f"speaker {speaker!r}: {err}") from err


def admit(script: Script, text: str, voices: dict[str, VoiceTemplate], settings: RenderSettings,
          renderer: Renderer, old: Manifest | None, trail: dict) -> list[Finding]:
    """Run every check; return the content filter's flags. ``trail`` is what the audit log records."""
    require_consent(voices)
    check_voices(script, voices, renderer)
    if settings.qa:
        require_models()
    try:
        return enforce(script, settings.content_filter, reviewed=_reviewed(script, text, settings, old))
    except ContentBlocked as blocked:
        audit.record("job.blocked", **trail, findings=[str(f) for f in blocked.findings if f.action == "block"])
        raise


def _reviewed(script: Script, text: str, settings: RenderSettings, old: Manifest | None) -> list[Finding]:
    """The LLM review's findings when the job asks for one; a job re-created with the same script keeps
    the findings it already has instead of asking again."""
    if not settings.content_review:
        return []
    if old is not None and old.script == text and old.settings.content_review:
        return [f for f in old.content_flags if f.source.startswith("LLM review")]
    return review(script, settings.content_filter)

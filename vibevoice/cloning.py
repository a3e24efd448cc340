"""Turning an uploaded recording into a cloning voice, which requires the recorded person's consent.

The page, the CLI (``vibevoice voices clone``) and the API (``POST /v1/voices/clone``) all come here, so
the rule holds everywhere: no confirmation, no template. The confirmation (statement, time, who, and
the hash of the exact recording it covers) is stored in the template, copied into every job manifest
that uses the voice, and written to the local audit log.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from . import audit, paths
from .atomic import write_bytes_atomic
from .errors import BadInput
from .voices import CONSENT_STATEMENT, CloneSpec, Consent, VoiceTemplate, load_templates, save_template, slug

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus"})


class ConsentRequired(BadInput):
    """A cloned voice without the speaker's recorded consent."""


def clone_voice(name: str, clip: bytes, suffix: str, consent: bool, actor: str,
                languages: tuple[str, ...] = ("en", "zh")) -> VoiceTemplate:
    """Check the recording, keep a copy, and save a cloning template carrying the consent record.

    ``suffix`` is the upload's file extension (the decoder needs it for some formats).
    """
    if not consent:
        raise ConsentRequired(f"cloning {name!r} needs the speaker's consent: confirm that “{CONSENT_STATEMENT}”")
    from .engines.vibevoice.processing import load_clip  # torch-free, but only cloning needs it

    checked = load_clip(clip, name=f"{name}'s reference clip")  # raises ClipError with the reason
    digest = hashlib.sha256(clip).hexdigest()
    suffix = suffix.lower() if suffix.lower() in AUDIO_SUFFIXES else ".wav"  # the name is ours, never the client's
    kept = paths.user_voices_dir() / "clips" / f"{digest[:12]}{suffix}"
    kept.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(kept, clip)
    record = Consent(confirmed_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                     confirmed_by=actor, clip_sha256=digest)
    template = VoiceTemplate(id=_free_id(f"clone-{slug(name)[:20]}-{digest[:8]}", name),
                             name=f"{name} (cloned, {checked.seconds:.0f} s)",
                             engine="vibevoice", languages=list(languages),
                             spec=CloneSpec(clip=str(kept), consent=record))
    save_template(template)
    audit.record("voice.cloned", actor=actor, voice=template.id, clip_sha256=digest, consent=record.model_dump())
    return template


def _free_id(wanted: str, name: str) -> str:
    """``wanted``, or ``wanted-2``, ``-3``… when another speaker's template already has it: two names
    that slug alike ("Dr. Lee", "Dr_ Lee") must not share one template (nor overwrite its consent)."""
    existing, candidate, n = load_templates(), wanted, 1
    while candidate in existing and not existing[candidate].name.startswith(f"{name} (cloned"):
        n += 1
        candidate = f"{wanted}-{n}"
    return candidate


def require_consent(voices: dict[str, VoiceTemplate]) -> None:
    """Refuse a job whose cloned voices carry no consent record (e.g. a hand-written template)."""
    for speaker, voice in voices.items():
        if voice.spec.kind == "clone" and voice.spec.consent is None:
            raise ConsentRequired(f"speaker {speaker!r} uses the cloned voice {voice.id!r}, which has no recorded "
                                  "consent; clone it again through the page, `vibevoice voices clone` or the API "
                                  "and confirm the speaker's consent")


"""Voice templates: what a speaker sounds like, as validated data.

A template is engine-specific in one place only, its ``spec``: a Kokoro voice or a weighted blend of
voice packs, a Piper voice, or a reference clip for cloning engines. Everything else (name, languages,
description, default speed) is what the page and CLI show. Presets ship in ``presets/voices/*.json``;
templates a user saves go to the app's data directory and survive restarts. A user template with the
same id as a preset overrides it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field, ValidationError, field_validator

from . import paths
from .atomic import write_bytes_atomic
from .errors import BadInput

Language = Literal["en", "zh"]


class BlendPart(BaseModel):
    voice: str
    weight: float = Field(gt=0, le=1)


class KokoroSpec(BaseModel):
    """A Kokoro voice: one style pack, or a weighted sum of several (a blend)."""

    kind: Literal["kokoro"] = "kokoro"
    blend: list[BlendPart] = Field(min_length=1)

    @field_validator("blend")
    @classmethod
    def _weights_sum_to_one(cls, parts: list[BlendPart]) -> list[BlendPart]:
        total = sum(p.weight for p in parts)
        if abs(total - 1.0) > 1e-3:
            raise ValueError(f"blend weights must add up to 1.0 (they add up to {total:.3f})")
        return parts


class PiperSpec(BaseModel):
    kind: Literal["piper"] = "piper"
    voice: str


CONSENT_STATEMENT = ("I confirm that the person whose voice is in this recording has agreed to having their voice "
                     "cloned for this use.")


class Consent(BaseModel):
    """The uploader's confirmation that the recorded person agreed, kept with the template and every job."""

    statement: str = CONSENT_STATEMENT
    confirmed_at: str = Field(description="UTC time of the confirmation")
    confirmed_by: str = Field(default="", description="who confirmed (user name or client address)")
    clip_sha256: str = Field(default="", description="the recording the confirmation covers")


class CloneSpec(BaseModel):
    """A reference clip for cloning engines (VibeVoice, Qwen3-TTS); it is unusable without a recorded consent."""

    kind: Literal["clone"] = "clone"
    clip: str
    consent: Consent | None = None
    transcript: str = Field(default="", max_length=2000, description="what the clip says; Qwen3-TTS clones "
                            "closer with it (in-context), from the voice alone without it")

    @field_validator("consent", mode="before")
    @classmethod
    def _older_flag(cls, value):
        """Templates saved before consent was a record carried ``consent: true`` only."""
        if value is True:
            return {"confirmed_at": "unknown (recorded as a yes/no flag)"}
        return None if value is False else value


class Qwen3SpeakerSpec(BaseModel):
    """One of the nine named speakers of a Qwen3-TTS CustomVoice checkpoint (Vivian, Ryan, ...)."""

    kind: Literal["qwen3-speaker"] = "qwen3-speaker"
    speaker: str = Field(pattern=r"^[A-Za-z_]{1,32}$")


class DesignSpec(BaseModel):
    """A designed voice: a description of the voice, spoken by a Qwen3-TTS VoiceDesign checkpoint."""

    kind: Literal["design"] = "design"
    description: str = Field(min_length=3, max_length=500, description="e.g. 'a calm, low male voice in his "
                             "fifties, slightly husky'")


Spec = Annotated[Union[KokoroSpec, PiperSpec, CloneSpec, Qwen3SpeakerSpec, DesignSpec], Field(discriminator="kind")]


class VoiceTemplate(BaseModel):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")
    name: str = Field(min_length=1, max_length=60)
    engine: Literal["kokoro", "piper", "vibevoice", "qwen3"]
    languages: list[Language] = Field(min_length=1)
    gender: Literal["female", "male", "neutral"] = "neutral"
    description: str = ""
    spec: Spec
    speed: float = Field(default=1.0, ge=0.5, le=2.0)
    # Optional per-emotion variants (e.g. "excited": a brighter blend), chosen by ``spec_for``.
    emotions: dict[str, Spec] = Field(default_factory=dict)
    builtin: bool = Field(default=False, exclude=True)

    def spec_for(self, emotion: str | None) -> Spec:
        """What the engine speaks for a line with ``emotion``: its variant if defined, else the voice itself."""
        return self.emotions.get(emotion, self.spec) if emotion else self.spec


class VoiceError(BadInput):
    """A voice assignment or template that cannot be used (unknown id, wrong language, invalid file)."""


def load_templates() -> dict[str, VoiceTemplate]:
    """Presets, then the user's saved templates on top, keyed by id."""
    templates = {t.id: t for t in _read_dir(paths.PRESETS_DIR / "voices", builtin=True)}
    templates.update({t.id: t for t in _read_dir(paths.user_voices_dir(), builtin=False)})
    return templates


def save_template(template: VoiceTemplate) -> Path:
    """Write a user template atomically so a crash never leaves half a JSON file behind."""
    target = paths.user_voices_dir() / f"{template.id}.json"
    write_bytes_atomic(target, template.model_dump_json(indent=2).encode("utf-8"))
    return target


def _read_dir(directory: Path, builtin: bool) -> list[VoiceTemplate]:
    found = []
    for path in sorted(directory.glob("*.json")):
        try:
            found.append(VoiceTemplate.model_validate({**json.loads(path.read_text("utf-8")), "builtin": builtin}))
        except (ValidationError, json.JSONDecodeError) as err:
            raise VoiceError(f"voice template {path} is invalid: {err}") from err
    return found


def parse_assignment(pairs: list[str]) -> dict[str, str]:
    """``["A=deep-male", "Speaker 2=bright-female"]`` → ``{"A": "deep-male", ...}`` (CLI/API form)."""
    out = {}
    for pair in pairs:
        speaker, sep, voice = pair.partition("=")
        if not sep or not speaker.strip() or not voice.strip():
            raise VoiceError(f"voice assignment {pair!r} should look like SPEAKER=VOICE_ID, e.g. A=deep-male")
        out[speaker.strip()] = voice.strip()
    return out


def assign_voices(
    speakers: list[str],
    languages: dict[str, set[str]],
    requested: dict[str, str],
    templates: dict[str, VoiceTemplate],
    engines: set[str] | None = None,
) -> dict[str, VoiceTemplate]:
    """Give every speaker a template: the requested one, else a distinct default for its language.

    Defaults follow the order of ``DEFAULT_ORDER`` and skip templates already in use, so a two-person
    dialogue gets a deep male and a bright female rather than two copies of one voice. Requests are
    matched case-insensitively by speaker name; ``engines`` limits the defaults (default: every engine
    but Qwen3-TTS, whose voices need its checkpoint); a request for a speaker the script does not have is an
    error (a typo would otherwise silently fall back to a default voice).
    """
    by_key = {s.casefold(): s for s in speakers}
    unknown = [name for name in requested if name.casefold() not in by_key]
    if unknown:
        raise VoiceError(f"no speaker {', '.join(map(repr, unknown))} in the script; speakers are {', '.join(speakers)}")
    chosen: dict[str, VoiceTemplate] = {}
    for name, voice_id in requested.items():
        if voice_id not in templates:
            raise VoiceError(f"unknown voice {voice_id!r} for speaker {name!r}; run `vibevoice voices` to list them")
        chosen[by_key[name.casefold()]] = templates[voice_id]
    # Qwen3-TTS voices need its checkpoint: they are defaults only for a job on that engine.
    usable = [t for t in templates.values() if t.engine in engines] if engines is not None else \
        [t for t in templates.values() if t.engine != "qwen3"]
    for speaker in speakers:
        if speaker in chosen:
            continue
        want = "zh" if "zh" in languages.get(speaker, set()) else "en"
        chosen[speaker] = _default_for(want, usable, {t.id for t in chosen.values()})
    return {s: chosen[s] for s in speakers}


DEFAULT_ORDER = {
    "en": ["deep-male", "bright-female", "warm-female", "mid-blend", "light-female", "soft-male-blend"],
    "zh": ["zh-male", "zh-female", "zh-mid"],
}


def _default_for(language: str, usable: list[VoiceTemplate], taken: set[str]) -> VoiceTemplate:
    ranked = {vid: i for i, vid in enumerate(DEFAULT_ORDER[language])}
    candidates = sorted(
        (t for t in usable if language in t.languages and t.spec.kind != "clone"),
        key=lambda t: (t.id in taken, ranked.get(t.id, len(ranked)), t.id),
    )
    if not candidates:
        raise VoiceError(f"no voice template speaks {language!r}")
    return candidates[0]


def design_voice(name: str, description: str, languages: tuple[str, ...] = ("en", "zh"),
                 gender: str = "neutral") -> VoiceTemplate:
    """Save a designed voice (a description the VoiceDesign model speaks in) as a user template."""
    template = VoiceTemplate(id=f"design-{slug(name)[:40]}", name=name, engine="qwen3", languages=list(languages),
                             gender=gender, description=description, spec=DesignSpec(description=description))
    save_template(template)
    return template


def slug(text: str) -> str:
    """A template id from a display name."""
    return re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-")[:48] or "voice"

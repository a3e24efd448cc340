"""Machine-readable provenance in every exported file: this is AI-generated speech, from which tool.

Each format gets the tags its own players and tools read, all saying the same thing: an
``AI-generated speech`` disclosure, the tool and version, the engine, the date and the job id.

- MP3: ID3v2 (title, COMM disclosure, TXXX fields, encoder, date);
- WAV: a RIFF ``LIST/INFO`` chunk (title, comment with the disclosure and fields, software, date),
  written by libsndfile and shown by Windows, Audacity and sndfile tools, plus the same ID3 frames in
  an ``id3`` chunk;
- FLAC and Ogg: Vorbis comments (``AI_GENERATED=yes``, ``DESCRIPTION``, ``ENCODER``, ``ENGINE``, …).

Tags are easy to strip; the watermark (``watermark.py``) is the part that survives re-encoding.
``read_tags`` reads any of them back, for ``vibevoice detect`` and the tests.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone

import mutagen
from mutagen.flac import FLAC
from mutagen.id3 import COMM, ID3, TDRC, TIT2, TPE1, TSSE, TXXX
from mutagen.wave import WAVE
from pydantic import BaseModel, Field

from . import __version__

DISCLOSURE = "AI-generated speech"
TOOL = "vibevoice-webui"


class Provenance(BaseModel):
    disclosure: str = DISCLOSURE
    tool: str = f"{TOOL} {__version__}"
    engine: str = Field(description="what spoke, e.g. kokoro, kokoro+piper, vibevoice")
    date: str = Field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    job_id: str = ""
    cloned_voice: bool = False
    watermark: str | None = Field(default=None, description="the inaudible mark's method, when embedded")

    def fields(self) -> dict[str, str]:
        """The tag set as plain key → text (the same keys in every format)."""
        out = {"AI_GENERATED": "yes", "DESCRIPTION": self.disclosure, "ENCODER": self.tool, "ENGINE": self.engine,
               "DATE": self.date, "JOB_ID": self.job_id, "CLONED_VOICE": "yes" if self.cloned_voice else "no"}
        if self.watermark:
            out["WATERMARK"] = self.watermark
        return out

    def summary(self) -> str:
        return f"{self.disclosure} — " + "; ".join(f"{k.lower()}={v}" for k, v in self.fields().items()
                                                   if k not in ("AI_GENERATED", "DESCRIPTION"))


def tag_mp3(data: bytes, provenance: Provenance, title: str) -> bytes:
    buffer = io.BytesIO(data)
    _id3(provenance, title).save(buffer)  # prepends the ID3v2 header to the stream
    return buffer.getvalue()


def info_strings(provenance: Provenance, title: str) -> dict[str, str]:
    """The strings libsndfile writes into a WAV's ``LIST/INFO`` chunk (or a FLAC's Vorbis comments)."""
    return {"title": title, "comment": provenance.summary(), "software": provenance.tool,
            "date": provenance.date[:10], "artist": "VibeVoice WebUI (AI-generated speech)"}


def tag_wav(data: bytes, provenance: Provenance, title: str) -> bytes:
    """Add the ID3 frames (in an ``id3`` chunk) to a WAV that already carries its INFO strings."""
    buffer = io.BytesIO(data)
    wave = WAVE(buffer)
    wave.add_tags()
    for frame in _id3(provenance, title).values():
        wave.tags.add(frame)
    buffer.seek(0)
    wave.save(buffer)
    return buffer.getvalue()


def tag_flac(data: bytes, provenance: Provenance, title: str) -> bytes:
    buffer = io.BytesIO(data)
    tag_flac_file(buffer, provenance, title)
    return buffer.getvalue()


def tag_flac_file(fileobj, provenance: Provenance, title: str) -> None:
    """Tag a FLAC file open for reading and writing (also one written in blocks, too long to hold):
    mutagen edits the metadata in place and moves the audio in small pieces if the tags need room."""
    flac = FLAC(fileobj)
    flac["TITLE"] = title
    flac["COMMENT"] = provenance.summary()
    for key, value in provenance.fields().items():
        flac[key] = value
    fileobj.seek(0)
    flac.save(fileobj)


def read_tags(path) -> dict[str, str]:
    """Provenance-related tags of a WAV, MP3 or FLAC file (empty when it has none)."""
    found: dict[str, str] = {}
    audio = mutagen.File(path)
    if audio is not None and audio.tags is not None:
        for key, value in audio.tags.items():
            if hasattr(value, "text"):  # an ID3 frame
                value = value.text[0] if value.text else ""
            text = str(value[0] if isinstance(value, list) else value)  # Vorbis comments are lists
            name = "COMMENT" if key.startswith("COMM:") else key.removeprefix("TXXX:")
            found[name.upper()] = text
    if str(path).lower().endswith(".wav"):
        import soundfile as sf

        with sf.SoundFile(path) as f:
            found.update({k: v for k, v in (("INFO_COMMENT", f.comment), ("INFO_SOFTWARE", f.software)) if v})
    return found


def _id3(provenance: Provenance, title: str) -> ID3:
    tags = ID3()
    tags.add(TIT2(encoding=3, text=title))
    tags.add(TPE1(encoding=3, text="VibeVoice WebUI (AI-generated speech)"))
    tags.add(TSSE(encoding=3, text=provenance.tool))
    tags.add(TDRC(encoding=3, text=provenance.date[:10]))
    tags.add(COMM(encoding=3, lang="eng", desc="disclosure", text=provenance.summary()))
    for key, value in provenance.fields().items():
        tags.add(TXXX(encoding=3, desc=key, text=value))
    return tags

"""``POST /v1/audio/speech``: OpenAI-compatible text to speech over the job service.

Accepts what OpenAI's speech API accepts (model, input, voice, response_format, speed), so existing
clients work unchanged; a tagged multi-speaker script may be sent as ``input`` with an extra ``voices``
map. MP3 streams while it renders; the other formats come whole, from the exported files.
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
import soundfile as sf
from fastapi import APIRouter, Depends
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..audio import SAMPLE_RATE
from ..errors import RenderFailed
from ..job.model import RenderSettings
from ..job.service import JobRequest, JobService
from ..provenance import DISCLOSURE
from ..script import MAX_SCRIPT_BYTES, check_text, parse_script
from .deps import actor, job_service

router = APIRouter(tags=["speech"])
# OpenAI's voice names, mapped to the closest preset, so clients written for OpenAI sound sensible.
OPENAI_VOICES = {"onyx": "deep-male", "nova": "bright-female", "shimmer": "light-female", "fable": "warm-female",
                 "alloy": "mid-blend", "echo": "soft-male-blend", "ash": "deep-male", "coral": "warm-female",
                 "sage": "mid-blend", "ballad": "soft-male-blend", "verse": "bright-female"}
MEDIA = {"mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac", "opus": "audio/ogg", "pcm": "audio/pcm",
         "srt": "application/x-subrip", "vtt": "text/vtt"}


class SpeechRequest(BaseModel):
    model_config = ConfigDict(strict=True)  # OpenAI's extra fields pass; wrong types do not

    model: str = Field(default="kokoro", description="accepted for compatibility; the voice decides the engine")
    input: str = Field(min_length=1, max_length=MAX_SCRIPT_BYTES)
    voice: str = Field(default="deep-male", description="a voice template id or an OpenAI voice name")
    response_format: Literal["mp3", "wav", "opus", "flac", "pcm"] = "mp3"
    speed: float = Field(default=1.0, ge=0.5, le=2.0)
    voices: dict[str, str] = Field(default_factory=dict, description="speaker → voice id for tagged scripts")
    instructions: str | None = Field(default=None, description="accepted for compatibility; not used")

    _input_characters = field_validator("input", mode="before")(check_text)


@router.post("/audio/speech", response_class=Response,
             responses={200: {"content": {m: {} for m in ("audio/mpeg", "audio/wav", "audio/flac", "audio/ogg")}}})
def speech(body: SpeechRequest, who: str = Depends(actor), jobs: JobService = Depends(job_service)):
    """OpenAI-compatible text to speech. MP3 streams while rendering; others come whole."""
    tagged = parse_script(body.input).speakers != ["Narrator"]
    script = body.input if tagged else f"[Narrator] {body.input}"
    voices = body.voices or ({} if tagged else {"Narrator": OPENAI_VOICES.get(body.voice, body.voice)})
    info = jobs.submit(JobRequest(script=script, voices=voices, settings=RenderSettings(speed=body.speed)), actor=who)
    if body.response_format == "mp3":
        return StreamingResponse(jobs.stream_mp3(info.id), media_type=MEDIA["mp3"])
    info = jobs.wait(info.id)
    if info.status != "done":
        raise RenderFailed(f"rendering failed: {info.message}")
    if body.response_format in ("wav", "flac"):  # the exported files, with their provenance tags
        return Response(jobs.output_path(info.id, body.response_format).read_bytes(),
                        media_type=MEDIA[body.response_format])
    audio, _ = sf.read(jobs.output_path(info.id, "wav"), dtype="int16")
    return Response(encode(audio, body.response_format), media_type=MEDIA[body.response_format])


def encode(audio: np.ndarray, fmt: str) -> bytes:
    """16-bit samples as OpenAI's raw PCM (24 kHz, little-endian, mono: no room for tags) or Ogg Opus."""
    if fmt == "pcm":
        return audio.astype("<i2").tobytes()
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", SAMPLE_RATE, 1, "OPUS", format="OGG") as out:
        out.comment = DISCLOSURE  # Ogg carries Vorbis comments too
        out.write(audio)
    return buffer.getvalue()

"""``POST /v1/audio/speech`` and the lists OpenAI-compatible clients read first (``/v1/models``,
``/v1/audio/models``, ``/v1/audio/voices``).

The speech endpoint takes OpenAI's current parameters — model, input, voice (a name or ``{"id": …}``),
instructions, response_format (mp3, opus, aac, flac, wav, pcm), speed (0.25–4.0), stream_format
(``audio`` or ``sse``) — so existing clients work unchanged; a tagged multi-speaker script may be sent
as ``input`` with an extra ``voices`` map. ``instructions`` reach the director as a hint for every line
(the plan is in the job). MP3 and PCM stream while rendering; SSE sends ``speech.audio.delta`` events
with base64 audio, then ``speech.audio.done``.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Literal

import numpy as np
import soundfile as sf
from fastapi import APIRouter, Depends
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..audio import SAMPLE_RATE
from ..engines import available_engines
from ..errors import RenderFailed, Unavailable
from ..job.model import RenderSettings
from ..job.service import JobRequest, JobService
from ..provenance import DISCLOSURE
from ..script import MAX_SCRIPT_BYTES, check_text, parse_script
from ..voices import load_templates
from .deps import actor, job_service

router = APIRouter(tags=["speech"])
# OpenAI's voice names, mapped to the closest preset, so clients written for OpenAI sound sensible.
OPENAI_VOICES = {"onyx": "deep-male", "nova": "bright-female", "shimmer": "light-female", "fable": "warm-female",
                 "alloy": "mid-blend", "echo": "soft-male-blend", "ash": "deep-male", "coral": "warm-female",
                 "sage": "mid-blend", "ballad": "soft-male-blend", "verse": "bright-female",
                 "marin": "warm-female", "cedar": "deep-male"}
QWEN3_FOR_GENDER = {"male": "qwen3-ryan", "female": "qwen3-vivian", "neutral": "qwen3-vivian"}
# OpenAI's model names are accepted and spoken by the embedded engine (the voice decides the engine).
OPENAI_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15")
MEDIA = {"mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac", "opus": "audio/ogg", "pcm": "audio/pcm",
         "aac": "audio/aac", "srt": "application/x-subrip", "vtt": "text/vtt"}
# Raw PCM says nothing about itself: 16-bit little-endian mono at this rate.
PCM_HEADERS = {"X-Sample-Rate": str(SAMPLE_RATE), "X-Channels": "1"}


class VoiceRef(BaseModel):
    id: str


def qwen3_voice(voice: str) -> str:
    """A voice for ``model="qwen3"``: a template id as it is, a Qwen3-TTS speaker name ("Vivian") as its preset,
    an OpenAI voice name as the named speaker closest to its preset (male or female)."""
    templates = load_templates()
    if voice in templates:
        return voice
    preset = f"qwen3-{voice.casefold().replace('_', '-')}"
    if preset in templates:
        return preset
    gender = templates[OPENAI_VOICES[voice]].gender if OPENAI_VOICES.get(voice) in templates else None
    return QWEN3_FOR_GENDER.get(gender, voice)


class SpeechRequest(BaseModel):
    model_config = ConfigDict(strict=True)  # OpenAI's extra fields pass; wrong types do not

    model: str = Field(default="kokoro", description="kokoro or an OpenAI model name (the voice decides the engine), "
                       "or qwen3: Qwen3-TTS on the server's checkpoint ($VIBEVOICE_QWEN3_MODEL_DIR)")
    input: str = Field(min_length=1, max_length=MAX_SCRIPT_BYTES)
    voice: str | VoiceRef = Field(default="deep-male", description="a voice template id, an OpenAI voice name, or "
                                  '{"id": …}')
    instructions: str | None = Field(default=None, max_length=4096,
                                     description="how to speak: a hint for the director on every line; with "
                                     "model qwen3 the instruction Qwen3-TTS is given, verbatim")
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    stream_format: Literal["audio", "sse"] = "audio"
    voices: dict[str, str] = Field(default_factory=dict, description="speaker → voice id for tagged scripts")

    _input_characters = field_validator("input", mode="before")(check_text)

    def job(self) -> JobRequest:
        tagged = parse_script(self.input).speakers != ["Narrator"]
        script = self.input if tagged else f"[Narrator] {self.input}"
        voice = self.voice.id if isinstance(self.voice, VoiceRef) else self.voice
        named = qwen3_voice(voice) if self.model == "qwen3" else OPENAI_VOICES.get(voice, voice)
        voices = self.voices or ({} if tagged else {"Narrator": named})
        hints = {s: self.instructions for s in parse_script(script).speakers} if self.instructions else {}
        return JobRequest(script=script, voices=voices, settings=self.settings(), speaker_hints=hints)

    def settings(self) -> RenderSettings:
        """``model="qwen3"``: the Qwen3-TTS engine on the operator's checkpoint, ``instructions`` sent to it
        verbatim; any other model name: the voice decides the engine, instructions guide the director."""
        if self.model != "qwen3":
            return RenderSettings(speed=self.speed)
        from ..engines.qwen3.configuration import default_model_dir

        return RenderSettings(speed=self.speed, engine="qwen3", model_dir=default_model_dir(),
                              instructions=self.instructions)


@router.post("/audio/speech", response_class=Response,
             responses={200: {"content": {m: {} for m in ("audio/mpeg", "audio/wav", "audio/flac", "audio/ogg",
                                                          "audio/aac", "text/event-stream")}}})
def speech(body: SpeechRequest, who: str = Depends(actor), jobs: JobService = Depends(job_service)):
    """OpenAI-compatible text to speech. MP3 and PCM stream while rendering; the others come whole."""
    info = jobs.submit(body.job(), actor=who)
    if body.stream_format == "sse":
        return StreamingResponse(_events(jobs, info.id, body), media_type="text/event-stream")
    if body.response_format == "mp3":
        return StreamingResponse(jobs.stream_mp3(info.id), media_type=MEDIA["mp3"])
    if body.response_format == "pcm":
        return StreamingResponse(jobs.stream_pcm(info.id), media_type=MEDIA["pcm"], headers=PCM_HEADERS)
    return Response(_finished(jobs, info.id, body.response_format), media_type=MEDIA[body.response_format])


def _finished(jobs: JobService, job_id: str, fmt: str) -> bytes:
    """The exported file in ``fmt`` (WAV and FLAC with their provenance tags), once the job is done."""
    info = jobs.wait(job_id)
    if info.status != "done":
        raise RenderFailed(f"rendering failed: {info.message}")
    if fmt in ("wav", "flac"):
        return jobs.output_path(job_id, fmt).read_bytes()
    audio, _ = sf.read(jobs.output_path(job_id, "wav"), dtype="int16")
    return encode(audio, fmt)


def _events(jobs: JobService, job_id: str, body: SpeechRequest) -> Iterator[bytes]:
    """OpenAI's speech SSE: ``speech.audio.delta`` events (base64 audio, as it renders for mp3 and pcm),
    then ``speech.audio.done`` with the usage."""
    if body.response_format == "mp3":
        pieces = jobs.stream_mp3(job_id)
    elif body.response_format == "pcm":
        pieces = jobs.stream_pcm(job_id)
    else:
        pieces = iter([_finished(jobs, job_id, body.response_format)])
    for piece in pieces:
        if piece:
            yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode("ascii")})
    words = len(body.input.split())
    seconds = jobs.info(job_id).audio_seconds
    usage = {"input_tokens": words, "output_tokens": int(seconds * 50), "total_tokens": words + int(seconds * 50)}
    yield _event({"type": "speech.audio.done", "usage": usage})


def _event(data: dict) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


def encode(audio: np.ndarray, fmt: str) -> bytes:
    """16-bit samples as OpenAI's raw PCM (24 kHz, little-endian, mono: no room for tags), Ogg Opus or AAC."""
    if fmt == "pcm":
        return audio.astype("<i2").tobytes()
    if fmt == "aac":
        return _aac(audio)
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", SAMPLE_RATE, 1, "OPUS", format="OGG") as out:
        out.comment = DISCLOSURE  # Ogg carries Vorbis comments too
        out.write(audio)
    return buffer.getvalue()


def _aac(audio: np.ndarray) -> bytes:
    """AAC in ADTS frames (what OpenAI sends), through FFmpeg's encoder in PyAV."""
    try:
        import av
    except ImportError as err:
        raise Unavailable("response_format 'aac' needs PyAV (pip install av); mp3, opus, flac, wav and pcm "
                          "work without it") from err
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="adts") as container:
        stream = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1).astype(np.int16), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "vibevoice-webui"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def _model_ids() -> list[str]:
    """The engines (Qwen3-TTS only where its extra is installed) and OpenAI's model names."""
    return [*available_engines(), *OPENAI_MODELS]


@router.get("/models", response_model=ModelList)
def models():
    """OpenAI's model list: the engines, and OpenAI's speech model names (spoken by the embedded engine)."""
    return ModelList(data=[ModelCard(id=name) for name in _model_ids()])


@router.get("/audio/models")
def audio_models():
    """The speech models, as OpenAI-compatible speech servers list them (Open WebUI reads this)."""
    return {"models": [{"id": name} for name in _model_ids()]}


@router.get("/audio/voices")
def audio_voices():
    """Every voice a request may name: OpenAI's names (mapped to presets) and every template id."""
    templates = load_templates()
    named = [{"id": name, "name": f"{name} → {templates[preset].name}"} for name, preset in OPENAI_VOICES.items()
             if preset in templates]
    return {"voices": named + [{"id": t.id, "name": t.name} for t in templates.values()]}

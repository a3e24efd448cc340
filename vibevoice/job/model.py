"""What a job is, as data: settings, the manifest and its chunk records, QA takes, progress.

Pydantic models only. Engines, export, disclosure and the QA report read these types; none of them
needs the runner, so this module imports nothing above the script, voice, plan and filter schemas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .. import __version__
from ..content_filter import Finding
from ..content_filter import Mode as FilterMode
from ..content_filter import default_mode as default_filter_mode
from ..plan.schema import LinePlan, Plan
from ..voices import VoiceTemplate

MANIFEST = "job.json"
Placement = Literal["auto", "start", "end", "off"]  # where the spoken AI notice goes (see ``disclosure``)
Status = Literal["pending", "queued", "rendering", "rendered", "done", "interrupted", "failed"]
ACTIVE: tuple[Status, ...] = ("queued", "rendering", "rendered")  # a worker still owns the job
Priority = Literal["high", "default", "low"]  # queue order: a short preview jumps a long audiobook
PRIORITIES: tuple[Priority, ...] = ("high", "default", "low")


class RenderSettings(BaseModel):
    # A misspelt setting is an error, not silently ignored; ``true`` is not a speed, nor "yes" a switch.
    model_config = ConfigDict(extra="forbid", strict=True)

    speed: float = Field(default=1.0, ge=0.25, le=4.0, description="multiplies every voice's own speed")
    seed: int = Field(default=0, description="for engines that sample; Kokoro is deterministic")
    turn_gap: float = Field(default=0.45, ge=0, le=5, description="seconds of silence when the speaker changes")
    line_gap: float = Field(default=0.25, ge=0, le=5, description="seconds between lines of one speaker")
    # "voices": each speaker's template picks its engine (Kokoro, Piper); "vibevoice": the whole script
    # is one VibeVoice generation from the checkpoint in ``model_dir``, speakers cloned from their voices;
    # "qwen3": every line is a Qwen3-TTS generation (in batches) from the checkpoint in ``model_dir``.
    engine: Literal["voices", "vibevoice", "qwen3"] = "voices"
    model_dir: str | None = Field(default=None, description="VibeVoice or Qwen3-TTS checkpoint (default: "
                                  "$VIBEVOICE_MODEL_DIR or $VIBEVOICE_QWEN3_MODEL_DIR)")
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        default="auto", description="VibeVoice precision: auto = bf16 on CUDA where supported, else fp32; fp16 "
        "only on request (it can overflow; the job notes say so)")
    # Generation controls of sampling/diffusion engines (VibeVoice); the embedded engine ignores them.
    cfg_scale: float = Field(default=1.3, ge=1.0, le=5.0, description="classifier-free guidance scale")
    diffusion_steps: int = Field(default=10, ge=1, le=100)
    # Sampling of token-generating engines (Qwen3-TTS); temperature 0 = greedy decoding (reproducible).
    temperature: float = Field(default=0.9, ge=0.0, le=2.0, description="0 = greedy decoding")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=50, ge=0, le=1000, description="0 = no top-k cut")
    repetition_penalty: float = Field(default=1.05, ge=1.0, le=2.0)
    batch_size: int = Field(default=0, ge=0, le=64, description="lines generated together (0 = from memory)")
    instructions: str | None = Field(default=None, max_length=4096, description="delivery instruction for every "
                                     "line, sent verbatim to an engine that takes one (Qwen3-TTS) in place of the "
                                     "director's; a designed voice's description still leads")
    rerolls: int = Field(default=2, ge=0, le=5, description="new seeds allowed for a take of implausible length")
    max_minutes: float = Field(default=90.0, gt=0, le=90.0, description="stop generating after this much audio")
    qa: bool = Field(default=False, description="hear every take (Whisper, speaker encoder) and re-render failures")
    qa_retakes: int = Field(default=2, ge=0, le=5, description="re-renders allowed per failing chunk")
    watermark: bool = Field(default=True, description="embed the inaudible watermark (`vibevoice detect` finds it)")
    disclosure: Placement = Field(default="auto", description="spoken AI notice: auto = at the start when a "
                                  "voice is cloned; start, end or off")
    content_review: bool = Field(default=False, description="also ask the director's LLM endpoint "
                                 "($VIBEVOICE_PLANNER_URL) to review the script")
    content_filter: FilterMode = Field(default_factory=default_filter_mode,
                                       description="block severe lines and flag the rest, flag only, or off")


class Take(BaseModel):
    """One rendering of a chunk as automatic QA heard it (``qa.gate``)."""

    number: int
    line_index: int | None = Field(default=None, description="set when one take holds many lines")
    variant: str = Field(description="what changed for this take, e.g. 'as planned' or 'rate x0.94'")
    speed: float
    passed: bool
    error_rate: float
    unit: str
    similarity: float | None = None
    margin: float | None = None
    closest: str | None = None
    transcript: str = ""
    reasons: list[str] = Field(default_factory=list)
    kept: bool = False


class TimedWord(BaseModel):
    text: str
    start: float
    end: float


class ChunkRecord(BaseModel):
    index: int
    key: str
    line_index: int
    speaker: str
    text: str
    speed: float = 1.0
    emotion: str | None = None  # the plan's emotion, when the voice has a variant for it
    # The line's prosody as its engine performs it (``prosody.Prosody.key()``; None: neutral) and the
    # emphasised words in this chunk's text; both are part of the key, so a plan edit re-renders this line.
    prosody: dict[str, float] | None = None
    emphasis: list[str] = Field(default_factory=list)
    instruct: str = Field(default="", description="the delivery instruction sent to an engine that takes one")
    status: Literal["pending", "done", "failed"] = "pending"
    samples: int = 0
    render_seconds: float = 0.0
    error: str | None = None
    # For a whole-script engine: (line_index, start, end) of every line inside this chunk's audio.
    spans: list[tuple[int, int, int]] = Field(default_factory=list)
    takes: list[Take] = Field(default_factory=list, description="QA scores of every take (render --qa)")
    rerolls: list[str] = Field(default_factory=list, description="takes the runaway guard rejected (seed, why)")
    words: list[TimedWord] = Field(default_factory=list, description="recognised words of the kept take")

    @property
    def file(self) -> str:
        return f"chunks/{self.key}.wav"


class Manifest(BaseModel):
    format: int = 1
    # Bumped by every write; a writer holding an older revision is refused (one writer at a time).
    revision: int = 0
    job_id: str
    tool: str = f"vibevoice-webui {__version__}"
    requested_by: str | None = Field(default=None, description="who created the job (for the local audit log)")
    created: str
    updated: str
    # rendered = every chunk on disk; done = exported too (``export.export_job`` sets it).
    status: Status = "pending"
    title: str = ""
    priority: Priority = "default"
    message: str | None = None
    script: str
    voices: dict[str, VoiceTemplate]
    settings: RenderSettings
    plan: Plan | None = None
    planner: str | None = Field(default=None, description="director still to run before rendering (None: the "
                                "plan is final)")
    speaker_hints: dict[str, str] = Field(default_factory=dict)
    # While a director is still to run on an edited script: the previous plan of each unchanged line
    # (re-indexed) and the speaker hints it was made with; ``Job.direct`` keeps them.
    kept_plans: list[LinePlan] = Field(default_factory=list)
    kept_hints: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list, description="plan requests the engines cannot honour")
    content_flags: list[Finding] = Field(default_factory=list, description="lines the content filter flagged")
    chunked: bool = Field(default=True, description="False until the chunks are keyed from the final plan")
    chunks: list[ChunkRecord]
    ahead: int = Field(default=0, description="while not chunked: the first chunks, keyed from final line plans "
                       "while the director plans the rest (a stream may play them)")
    outputs: dict[str, str] = Field(default_factory=dict)


@dataclass
class Progress:
    done: int
    total: int
    audio_seconds: float
    elapsed: float
    eta: float | None
    line_index: int | None
    speaker: str | None
    text: str | None

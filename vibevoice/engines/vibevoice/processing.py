"""From a script and voice templates to model inputs: speaker roles, reference clips, prompts, scenes.

VibeVoice reads the whole script in its prompt and then speaks it as one continuous stream. Script
speakers become the model's speaker roles "0".."3" in order of appearance in each prompt (each scene is
numbered afresh, as the original implementation numbers every prompt). A speaker's voice is a
reference clip in the prompt (one per speaker, at 24 kHz mono; every 3200 samples become one prompt
token). Clips come from a cloning template (an upload or a file) or, so that the built-in presets work
here too, are rendered by the embedded Kokoro engine from a preset.

A script whose prompt plus speech would not fit the model's context is split into scenes; each scene
is generated on its own with the voice clips of its speakers, so voices stay the same across scenes.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ... import paths
from ...audio import SAMPLE_RATE
from ...errors import BadInput
from ...script import Line, Script, estimate_speech_seconds
from ...voices import CloneSpec, KokoroSpec, VoiceTemplate

HOP = 3200  # samples per frame / per prompt token of a clip
FRAMES_PER_SECOND = SAMPLE_RATE / HOP  # 7.5
MAX_SPEAKERS = 4
MIN_CLIP_SECONDS = 1.0
LONG_CLIP_SECONDS = 30.0  # above this: a warning (memory and context), not an error
MAX_CLIP_SECONDS = 120.0
_SILENT_DBFS = -60.0
_QUIET_WINDOW_DBFS = -45.0
_CLIPPED = 0.999
# Kokoro renders this (about 9 s) when a preset stands in for a reference clip.
REFERENCE_TEXT = {
    "en": "Hello, and thank you for listening. Today we talk about stories, science and the small things that "
          "make an ordinary day feel special.",
    "zh": "大家好，欢迎收听本期节目。今天我们聊一聊故事、科学，还有那些让平凡日子变得特别的小事情。",
}
# Speech may run a little longer than the text estimate: scenes keep this headroom in the context
# (the per-scene frame limit allows twice that before cutting a runaway generation).
FRAME_HEADROOM = 1.1


class ClipError(BadInput):
    """A reference clip cannot be used; the message names the file and the reason."""


@dataclass
class Clip:
    """A checked reference clip: 24 kHz mono float32, with what was found about it."""

    audio: np.ndarray
    source: str
    original_rate: int
    original_channels: int
    warnings: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.audio.size / SAMPLE_RATE

    @property
    def tokens(self) -> int:
        return math.ceil(self.audio.size / HOP)

    def digest(self) -> str:
        return hashlib.sha256(self.audio.tobytes()).hexdigest()[:16]


def load_clip(source: str | Path | bytes, name: str | None = None) -> Clip:
    """Read a WAV/MP3/FLAC/OGG file (path or bytes), mix to mono, resample to 24 kHz, check it.

    The header's length is checked before anything is decoded, and decoding stops after the longest
    clip allowed: a small compressed file of hours of silence never expands in memory.
    """
    import soundfile as sf

    label = name or (str(source) if not isinstance(source, bytes) else "uploaded clip")
    opened = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        with sf.SoundFile(opened) as f:
            if f.frames > 0 and f.samplerate > 0 and f.frames / f.samplerate > MAX_CLIP_SECONDS:
                raise ClipError(f"{label} is too long ({f.frames / f.samplerate:.0f} s, limit "
                                f"{MAX_CLIP_SECONDS:.0f} s); cut it to 5-30 s of clean speech")
            audio = f.read(frames=int((MAX_CLIP_SECONDS + 1) * f.samplerate), dtype="float32", always_2d=True)
            rate = f.samplerate
    except ClipError:
        raise
    except FileNotFoundError as err:
        raise ClipError(f"voice clip {label} does not exist") from err
    except Exception as err:  # noqa: BLE001 — libsndfile's own words name a memory object, not the user's file
        raise ClipError(f"voice clip {label} cannot be read as audio: use WAV, MP3, FLAC or OGG") from err
    return check_clip(audio, rate, label)


def check_clip(audio: np.ndarray, rate: int, label: str = "clip") -> Clip:
    """Mono-mix (channels averaged), resample with soxr, and check length, silence and clipping."""
    import soxr

    audio = np.asarray(audio, np.float32)
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    mono = audio if audio.ndim == 1 else audio.mean(axis=1)
    warnings = []
    if mono.size and np.mean(np.abs(mono) >= _CLIPPED) > 0.001:
        warnings.append(f"{label} is clipped ({np.mean(np.abs(mono) >= _CLIPPED):.1%} of samples at full scale); "
                        "the cloned voice will carry the distortion")
    if rate != SAMPLE_RATE and mono.size:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    seconds = mono.size / SAMPLE_RATE
    if seconds < MIN_CLIP_SECONDS:
        raise ClipError(f"{label} is too short ({seconds:.2f} s); use at least {MIN_CLIP_SECONDS:.0f} s of speech "
                        "(5 to 30 s works best)")
    if seconds > MAX_CLIP_SECONDS:
        raise ClipError(f"{label} is too long ({seconds:.0f} s, limit {MAX_CLIP_SECONDS:.0f} s); cut it to 5-30 s of "
                        "clean speech")
    if seconds > LONG_CLIP_SECONDS:
        warnings.append(f"{label} is long ({seconds:.0f} s = {math.ceil(mono.size / HOP)} prompt tokens); long clips "
                        "cost memory and context in every scene. 5-30 s is enough")
    level = _dbfs(mono)
    if level < _SILENT_DBFS:
        raise ClipError(f"{label} is silent ({level:.0f} dBFS); record or choose a clip with speech")
    windows = mono[: mono.size // 1200 * 1200].reshape(-1, 1200)  # 50 ms
    quiet = float(np.mean([_dbfs(w) < _QUIET_WINDOW_DBFS for w in windows])) if windows.size else 0.0
    if quiet > 0.6:
        warnings.append(f"{label} is mostly silence ({quiet:.0%}); trim it to the speech")
    return Clip(mono, label, rate, channels, warnings)


def _dbfs(x: np.ndarray) -> float:
    return 20 * math.log10(max(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))), 1e-12))


def reference_clip(template: VoiceTemplate, language: str = "en") -> Clip:
    """The clip a template stands for: its cloning clip, or a Kokoro preset rendered to one."""
    spec = template.spec
    if isinstance(spec, CloneSpec):
        path = Path(spec.clip).expanduser()
        if not path.is_absolute():
            path = paths.user_voices_dir() / path
        return load_clip(path, name=f"voice clip of {template.id!r} ({path})")
    if isinstance(spec, KokoroSpec):
        from .. import get_engine

        text = REFERENCE_TEXT["zh" if language == "zh" or template.languages == ["zh"] else "en"]
        audio = get_engine("kokoro").speak(text, template, template.speed)
        return check_clip(audio, SAMPLE_RATE, f"Kokoro preset {template.id!r}")
    raise ClipError(f"voice {template.id!r} ({spec.kind}) cannot give VibeVoice a reference clip; use a clone "
                    "template with a recording, or a Kokoro preset")


# ------------------------------------------------------------------------------------------------------
# Speakers, prompts, scenes


def speaker_roles(script: Script) -> dict[str, str]:
    """Script speakers → VibeVoice roles "0".."3", in order of first appearance."""
    if len(script.speakers) > MAX_SPEAKERS:
        raise BadInput(f"VibeVoice speaks at most {MAX_SPEAKERS} speakers; this script has {len(script.speakers)} "
                         f"({', '.join(script.speakers)}). Merge speakers or split the script.")
    return {speaker: str(i) for i, speaker in enumerate(script.speakers)}


def scene_roles(lines: list[Line]) -> dict[str, str]:
    """The roles of one prompt: its speakers numbered "0".."k-1" in order of first appearance *in these lines*.

    The original implementation always numbers a prompt's voices from 0 in order of appearance, so a
    later scene is numbered afresh (its first speaker is "0" even if that speaker was "2" in scene 1);
    which voice a speaker has comes from the clip placed under its number, not from the number."""
    return {speaker: str(i) for i, speaker in enumerate(dict.fromkeys(line.speaker for line in lines))}


def model_text(text: str) -> str:
    """Text as the model is given it: curly apostrophes made straight, as both original demos do (the
    checkpoints were trained on straight ones; ’ is also split into odd tokens)."""
    return text.replace("\u2019", "'")


def conversation(lines: list[Line], roles: dict[str, str], clips: dict[str, Clip]) -> tuple[list[dict], list[np.ndarray]]:
    """Chat messages for the processor's template, and the clips in the order the template places them
    (one per speaker, in that speaker's first message). ``roles`` should be ``scene_roles(lines)``."""
    messages, ordered, voiced = [], [], set()
    for line in lines:
        content: list[dict] = [{"type": "text", "text": model_text(line.text)}]
        if line.speaker in clips and line.speaker not in voiced:
            voiced.add(line.speaker)
            content.append({"type": "audio", "audio": clips[line.speaker].audio})
            ordered.append(clips[line.speaker].audio)
        messages.append({"role": roles[line.speaker], "content": content})
    return messages, ordered


def build_inputs(processor, prompts: list[tuple[list[dict], list[np.ndarray]]]):
    """Tokenized prompts (left-padded when several: each row continues from its own last token)."""
    processor.tokenizer.padding_side = "left"
    texts = [processor.apply_chat_template(messages, tokenize=False) for messages, _ in prompts]
    audio = [clip for _, clips in prompts for clip in clips]
    kwargs = {"audio": audio, "sampling_rate": SAMPLE_RATE} if audio else {}
    return processor(text=texts, padding=True, return_tensors="pt", **kwargs)


def estimated_frames(line: Line) -> int:
    seconds = estimate_speech_seconds(line.text, "zh" if line.language == "zh" else line.language)
    return max(1, math.ceil(seconds * FRAMES_PER_SECOND))


@dataclass
class Scene:
    """Consecutive lines generated as one stream (all of them, unless the context is too small)."""

    index: int
    lines: list[Line]
    prompt_tokens: int
    estimated_frames: int

    @property
    def first_source_line(self) -> int:
        return self.lines[0].source_line

    def describe(self, start_seconds: float) -> str:
        return (f"scene {self.index + 1}: script lines {self.lines[0].source_line}-{self.lines[-1].source_line} "
                f"({len(self.lines)} lines, starts at ~{_clock(start_seconds)})")


def plan_scenes(lines: list[Line], clips: dict[str, Clip], count_tokens, max_positions: int,
                system_tokens: int = 40) -> list[Scene]:
    """Cut lines into scenes whose prompt + speech (with ``FRAME_HEADROOM``) fit ``max_positions``.

    Cuts fall at line boundaries, preferring a change of speaker. Each scene's prompt holds the clips
    of the speakers in it, so voices carry over.
    """
    groups: list[list[Line]] = []
    current: list[Line] = []

    def cost(group: list[Line]) -> tuple[int, int]:
        speakers = {line.speaker for line in group}
        prompt = system_tokens + sum(clips[s].tokens + 8 for s in speakers if s in clips)
        prompt += sum(count_tokens(f" Speaker 0: {line.text}\n") for line in group)
        return prompt, sum(estimated_frames(line) for line in group)

    def fits(group: list[Line]) -> bool:
        prompt, frames = cost(group)
        return prompt + math.ceil(frames * FRAME_HEADROOM) <= max_positions

    for line in lines:
        if fits(current + [line]):
            current.append(line)
            continue
        if not current:
            raise BadInput(f"script line {line.source_line} alone does not fit the model's context of "
                             f"{max_positions} positions; split it")
        # prefer to cut where the speaker changes, within the last few lines
        cut = next((i for i in range(len(current) - 1, max(0, len(current) - 6), -1)
                    if current[i].speaker != current[i - 1].speaker), len(current))
        groups.append(current[:cut])
        current = current[cut:] + [line]
        if not fits(current):
            groups.append(current[:-1])
            current = [line]
    if current:
        groups.append(current)
    out = []
    for i, group in enumerate(g for g in groups if g):
        prompt, frames = cost(group)
        out.append(Scene(i, group, prompt, frames))
    return out


def _clock(seconds: float) -> str:
    minutes, sec = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{sec:02d}" if minutes >= 60 else f"{minutes}:{sec:02d}"

"""Cutting a job into chunks and keying them, and the one place that picks how a job is rendered.

Three renderers, chosen by ``renderer_for(settings)``:
- ``LineByLine`` (the default, ``engine="voices"``): each script line, or a sentence group of a long
  line, is one chunk, spoken by its own voice's engine (Kokoro, Piper); pauses are laid out by the
  timeline, and automatic QA can re-render a single failing chunk. An engine that renders on lanes
  (Kokoro's ``submit``) gets the next chunks ahead (``prefetch``), from the programme's second chunk on.
- ``WholeScript`` (``engine="vibevoice"``): the whole script is one chunk, one continuous generation
  that resumes from the engine's own saved state; its lines' spans come back with the audio.

- ``Batched`` (``engine="qwen3"``): line by line as above, but one engine for the job, and the lines
  are generated in batches (``prefetch``) and then finished, chunk by chunk, in order.

A chunk's key is a hash of everything that shapes its audio (engine version, voice spec, text,
language, speed, seed, and the line's prosody when it is not neutral), so a re-created job keeps every chunk whose audio would not change.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace

import numpy as np

from .. import delivery
from ..delivery import TIMELINE_FIELDS, LineDelivery
from ..engines import Engine, Segment, get_engine, kokoro_lanes
from ..engines.base import ChunkAudio, split_text
from ..plan.schema import Plan
from ..prosody import Prosody
from ..script import Script
from ..voices import VoiceTemplate
from .model import ChunkRecord, RenderSettings

FrameProgress = Callable[[int, int], None]
FIRST_CHUNK_CHARS = 90  # the programme's first chunk: one sentence up to this long (issue 16, first audio)


class LineByLine:
    """Every speaker's template picks its engine; every line is spoken (and retaken) on its own.

    Throughput: the job hands ``prefetch`` the next ``lookahead`` chunks before each one; those whose
    engine has lanes (``submit``) start rendering there, and ``take`` then waits for its own. The job
    still records, saves and reports chunk by chunk in order, a lane's error surfaces on its own chunk,
    and the programme's first chunk renders alone on every core (first audio before throughput).
    """

    whole_script = False
    batch_size = 1
    renders_ahead = True  # a line can be rendered as soon as its plan is final (``Job.direct``, ``ahead``)
    notes: tuple[str, ...] = ()  # what the renderer found when keying the chunks (for the job's notes)

    def __init__(self, settings: RenderSettings) -> None:
        self.settings = settings
        self._ahead: dict[str, tuple[float, Future]] = {}  # chunk key -> (its speed, its take on a lane)

    @property
    def lookahead(self) -> int:
        """Chunks the job shows ``prefetch`` at a time: one per lane plus one queued, so no lane idles
        while the job writes the chunk it waited for."""
        return kokoro_lanes.workers() + 1

    def prefetch(self, chunks: list[ChunkRecord], script: Script, voices: dict[str, VoiceTemplate]) -> None:
        """Start the chunks not yet started on their engine's lanes (engines without lanes: nothing)."""
        if any(c.index == 0 and c.status != "done" for c in chunks):
            return  # the programme's first chunk renders alone, on every core
        for chunk in chunks:
            engine = self.engine(voices[chunk.speaker])
            if chunk.key in self._ahead or chunk.status == "done" or getattr(engine, "workers", 1) < 2:
                continue
            language = script.lines[chunk.line_index].language
            self._ahead[chunk.key] = (chunk.speed, engine.submit([self._segment(chunk, language, chunk.speed)],
                                                                 {chunk.speaker: voices[chunk.speaker]}))

    def engine(self, voice: VoiceTemplate) -> Engine:
        return get_engine(voice.engine)

    def honoured(self, voice: VoiceTemplate) -> frozenset[str]:
        return self.engine(voice).capabilities.plan_fields | TIMELINE_FIELDS

    def chunks(self, script: Script, voices: dict[str, VoiceTemplate], plan: Plan | None,
               lines: list[int] | None = None) -> list[ChunkRecord]:
        """Cut every line (or only ``lines``) into pieces its engine can speak in one call; key each by what
        shapes its audio. Records are numbered from 0 here; keys do not depend on which lines were asked."""
        chunks: list[ChunkRecord] = []
        plans = delivery.line_plans(plan)
        for line in script.lines if lines is None else [script.lines[i] for i in lines]:
            voice = voices[line.speaker]
            wanted = delivery.line_delivery(voice, self.settings.speed, plans.get(line.index))
            emotion = wanted.emotion if wanted.emotion in voice.emotions else None  # a variant performs it
            engine = self.engine(voice)
            seed = self.settings.seed if engine.capabilities.seeded else None
            first = FIRST_CHUNK_CHARS if line.index == 0 else None  # the first clause alone: heard sooner
            pieces = split_text(line.text, engine.capabilities.max_chunk_chars, first)
            for n, text in enumerate(pieces):
                shaped = _prosody_of(wanted, engine, last=n == len(pieces) - 1)
                emphasis = [w for w in wanted.emphasis if w in text] if shaped else []
                key = chunk_key(engine.version, voice.spec_for(emotion).model_dump(), text, line.language,
                                wanted.speed, seed, shaped and {"prosody": shaped, "emphasis": emphasis})
                chunks.append(ChunkRecord(index=len(chunks), key=key, line_index=line.index, speaker=line.speaker,
                                          text=text, speed=round(wanted.speed, 4), emotion=emotion,
                                          prosody=shaped, emphasis=emphasis))
        return chunks

    def speak(self, chunk: ChunkRecord, language: str, voice: VoiceTemplate, speed: float) -> np.ndarray:
        """One take of ``chunk`` at ``speed`` (QA retakes vary it)."""
        return np.asarray(self.take(chunk, language, voice, speed).audio, np.float32)

    def take(self, chunk: ChunkRecord, language: str, voice: VoiceTemplate, speed: float) -> ChunkAudio:
        """One take of ``chunk`` with its delivery as keyed (the lane's, if it was started ahead at this
        speed); the engine's word timings when it has them."""
        started = self._ahead.pop(chunk.key, None)
        if started is not None and started[0] == speed:
            return started[1].result()  # the lane's error, if any, is this chunk's
        return self.engine(voice).synthesize([self._segment(chunk, language, speed)], {chunk.speaker: voice})

    @staticmethod
    def _segment(chunk: ChunkRecord, language: str, speed: float) -> Segment:
        return Segment(chunk.line_index, chunk.speaker, chunk.text, language,
                       LineDelivery(speed=speed, emotion=chunk.emotion, emphasis=tuple(chunk.emphasis),
                                    prosody=Prosody.from_key(chunk.prosody)))


class Batched(LineByLine):
    """Qwen3-TTS: each line a chunk (resumable, retakeable), the lines of a job generated in batches."""

    renders_ahead = False  # its batches are cut from the whole job's chunks

    def __init__(self, settings: RenderSettings) -> None:
        super().__init__(settings)
        self._engine = get_engine(settings.engine, model_dir=settings.model_dir, dtype=settings.dtype)
        self.batch_size = settings.batch_size or self._engine.default_batch()
        self._ready: dict[str, tuple[np.ndarray, list[str]]] = {}
        self.notes = ()

    @property
    def lookahead(self) -> int:
        return self.batch_size

    def engine(self, voice: VoiceTemplate | None = None) -> Engine:
        return self._engine

    def chunks(self, script: Script, voices: dict[str, VoiceTemplate], plan: Plan | None) -> list[ChunkRecord]:
        """One chunk per line (or sentence group), keyed by text, voice, instruct, sampling and model."""
        chunks, plans, mute = [], delivery.line_plans(plan), []
        sampling = self.settings.model_dump(include={"seed", "temperature", "top_p", "top_k", "repetition_penalty",
                                                     "dtype"})
        for line in script.lines:
            voice = voices[line.speaker]
            wanted = delivery.line_delivery(voice, self.settings.speed, plans.get(line.index))
            instruct = self._engine.instruct_for(voice, wanted, line.hints, verbatim=self.settings.instructions)
            asked = line.hints or line.index in plans or self.settings.instructions
            if not self._engine.checkpoint.instructable and asked:
                mute.append(line.index + 1)
            for text in split_text(line.text, self._engine.capabilities.max_chunk_chars):
                key = chunk_key(self._engine.version, {"voice": voice.spec.model_dump(), "instruct": instruct,
                                                       "model": str(self._engine.checkpoint.path), **sampling},
                                text, line.language, wanted.speed, self.settings.seed)
                chunks.append(ChunkRecord(index=len(chunks), key=key, line_index=line.index, speaker=line.speaker,
                                          text=text, speed=round(wanted.speed, 4), instruct=instruct))
        self.notes = (f"the {self._engine.checkpoint.size} {self._engine.checkpoint.variant} model follows no "
                      f"instructions: the delivery asked for is not performed ({delivery.name_lines(mute)})",) if mute else ()
        return chunks

    def prefetch(self, chunks: list[ChunkRecord], script: Script, voices: dict[str, VoiceTemplate]) -> None:
        from ..engines.qwen3.engine import batch_seed
        from ..engines.qwen3.generation import Request, Sampling

        s = self.settings
        requests = [Request(c.text, script.lines[c.line_index].language, c.speed, c.instruct,
                            self._engine.voice_of(voices[c.speaker])) for c in chunks]
        sampling = Sampling(s.temperature, s.top_p, s.top_k, s.repetition_penalty)
        takes = self._engine.speak(requests, sampling, batch_seed(s.seed, chunks[0].key), s.rerolls)
        self._ready.update({c.key: (t.audio, t.rejected) for c, t in zip(chunks, takes)})

    def speak(self, chunk: ChunkRecord, language: str, voice: VoiceTemplate, speed: float) -> np.ndarray:
        ready = self._ready.pop(chunk.key, None) if speed == chunk.speed else None
        if ready is None:  # not prefetched (a QA retake at another pace, or a failed batch): this line alone
            self.prefetch([chunk.model_copy(update={"speed": speed})], _script_of(chunk, language), {chunk.speaker: voice})
            ready = self._ready.pop(chunk.key)
        chunk.rerolls = ready[1]
        return ready[0]

    def take(self, chunk: ChunkRecord, language: str, voice: VoiceTemplate, speed: float) -> ChunkAudio:
        """The prefetched take (no word times: Qwen3 has no durations to give)."""
        return ChunkAudio(self.speak(chunk, language, voice, speed))


def _script_of(chunk: ChunkRecord, language: str) -> Script:
    """A one-line stand-in script so a single chunk can be prefetched on its own."""
    from ..script import Line

    line = Line(index=0, turn=0, speaker=chunk.speaker, text=chunk.text, language=language, source_line=1, column=1)
    return Script(lines=[line] * (chunk.line_index + 1), speakers=[chunk.speaker])


class WholeScript:
    """One engine speaks the whole script in one generation (VibeVoice), voices cloned from templates."""

    whole_script = True
    batch_size = lookahead = 1
    renders_ahead = False
    notes: tuple[str, ...] = ()

    def __init__(self, settings: RenderSettings) -> None:
        self.settings = settings
        self._engine = get_engine(settings.engine, model_dir=settings.model_dir, dtype=settings.dtype)

    def engine(self, voice: VoiceTemplate | None = None) -> Engine:
        return self._engine

    def honoured(self, voice: VoiceTemplate) -> frozenset[str]:
        return self._engine.capabilities.plan_fields

    def chunks(self, script: Script, voices: dict[str, VoiceTemplate], plan: Plan | None) -> list[ChunkRecord]:
        """The single chunk, keyed by everything that shapes the generation."""
        engine = self._engine
        identity = {"engine": engine.version, "lines": [(ln.speaker, ln.text) for ln in script.lines],
                    "voices": {s: v.spec.model_dump() for s, v in voices.items()},
                    "settings": self.settings.model_dump(include={"seed", "cfg_scale", "diffusion_steps", "dtype",
                                                                  "max_minutes"}),
                    "model": str(getattr(engine, "checkpoint", None) and engine.checkpoint.path)}
        key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]
        text = " ".join(ln.text for ln in script.lines)
        return [ChunkRecord(index=0, key=key, line_index=0, speaker=script.speakers[0], text=text)]

    def render(self, job_dir, script: Script, voices: dict[str, VoiceTemplate], progress: FrameProgress,
               stop: threading.Event | None):
        """Render or resume the whole script; returns the engine's ``ChunkAudio`` (audio and line spans)."""
        return self._engine.render_job(job_dir, script, voices, self.settings, stop=stop, progress=progress)


Renderer = LineByLine | WholeScript


def renderer_for(settings: RenderSettings) -> Renderer:
    if settings.engine == "qwen3":
        return Batched(settings)
    return WholeScript(settings) if settings.engine != "voices" else LineByLine(settings)


def _prosody_of(wanted: LineDelivery, engine: Engine, last: bool) -> dict[str, float] | None:
    """The delivery's prosody as the engine performs it (None: neutral, or an engine without prosody).
    Only a line's last piece carries its question's final rise."""
    if "pitch" not in engine.capabilities.plan_fields:
        return None
    shaped = wanted.prosody if last else replace(wanted.prosody, final_rise=0.0)
    if not wanted.emphasis:
        shaped = replace(shaped, emphasis_pitch=0.0, emphasis_db=0.0, emphasis_stretch=1.0)
    return None if shaped.neutral else shaped.key()


def chunk_key(engine_version: str, spec: dict, text: str, language: str, speed: float, seed: int | None,
              shaping: dict | None = None) -> str:
    """A hash of what shapes a chunk's audio; ``shaping`` (prosody, emphasis) only when not neutral, so
    neutral chunks keep the keys they had before prosody existed."""
    identity = {"engine": engine_version, "spec": spec, "text": text, "language": language,
                "speed": round(speed, 4), "seed": seed}
    if shaping:
        identity["shaping"] = shaping
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]

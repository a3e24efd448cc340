"""The VibeVoice engine: a whole script in one resumable, streamed, long-form generation.

Unlike the stateless engines, VibeVoice reads the entire script (all speakers, all lines) in its prompt
and speaks it as one continuous stream, so the renderer hands it the whole job (``render_job``)
instead of line-sized chunks. Inside, the script is split into scenes only where the model's context
would overflow, each scene is generated in chunk calls with carried state (``generation``), the state
is saved after every chunk under ``job_dir/state/vibevoice``, and a later call resumes from there when
script, voices, settings, model and device are unchanged. Line timings are estimates: the model
produces no turn markers.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from ...script import Line, Script
from ...voices import CloneSpec, KokoroSpec, VoiceTemplate
from ..base import SAMPLE_RATE, Capabilities, ChunkAudio, Engine, Segment
from . import configuration
from .generation import DEFAULT_CHUNK_FRAMES, GenerationOptions, StateStore, run, write_atomic
from .processing import (FRAME_HEADROOM, FRAMES_PER_SECOND, Clip, Scene, build_inputs, conversation, plan_scenes,
                         reference_clip, speaker_roles)
from .state import PINNED_TRANSFORMERS, check_transformers

STATE_DIR = ("state", "vibevoice")
# Seconds of compute per second of audio, for estimates: measured 60-100x on a 2-core CPU (1.5B, fp32);
# the GPU figures are rough guides until measured (bench/bench_vibevoice.py prints the method).
TYPICAL_RTF = {"cpu": 80.0, "mps": 4.0, "cuda": 0.8}


class VibeVoiceEngine(Engine):
    capabilities = Capabilities(
        name="vibevoice", languages=frozenset({"en", "zh", "mixed"}), max_speakers=4, cloning=True, stateful=True,
        seeded=True, plan_fields=frozenset(), max_chunk_chars=1_000_000, typical_rtf=TYPICAL_RTF["cpu"],
    )
    version = f"vibevoice-transformers-{PINNED_TRANSFORMERS}/1"

    def __init__(self, model_dir: str | Path | None = None, device: str | None = None, dtype: str | None = None,
                 attention: str | None = None, compile: bool = False, chunk_frames: int = DEFAULT_CHUNK_FRAMES,
                 offload_kv: bool = False, scene_minutes: float | None = None):
        check_transformers()
        self.checkpoint = configuration.inspect_checkpoint(model_dir)
        self.device = configuration.choose_device(device)
        self.dtype = configuration.choose_dtype(self.device, dtype)
        self.attention = configuration.choose_attention(self.device, attention)
        self.compile = compile
        self.chunk_frames = chunk_frames
        if offload_kv and self.device.type != "cuda":
            raise ValueError("offload_kv moves the KV cache from the GPU to CPU RAM; it needs a CUDA device")
        self.offload_kv = offload_kv  # memory lever (see preflight): KV cache in CPU RAM
        self.scene_minutes = scene_minutes  # memory lever: shorter scenes, smaller KV cache
        self.capabilities = replace(VibeVoiceEngine.capabilities, typical_rtf=TYPICAL_RTF.get(self.device.type, 80.0))
        # Test/experiment hook: (scene index, prompt length) -> extra logits processors. Random test
        # weights cannot choose control tokens, so tests force them; users never set this.
        self.logits_processors: Callable[[int, int], list] | None = None
        self.warnings: list[str] = []  # of the last render: clip problems, scene cuts, frame limits
        self._loaded = None
        self._lock = threading.Lock()  # one render at a time: diffusion noise comes from the global RNG

    # -- model -----------------------------------------------------------------------------------------

    @property
    def model(self):
        return self._load()[0]

    @property
    def processor(self):
        return self._load()[1]

    def _load(self):
        if self._loaded is None:
            self._loaded = configuration.load(self.checkpoint, self.device, self.dtype, self.attention)
        return self._loaded

    def options(self, settings) -> GenerationOptions:
        static = self.checkpoint.max_positions if self.compile else None
        return GenerationOptions(cfg_scale=settings.cfg_scale, diffusion_steps=settings.diffusion_steps,
                                 static_cache_length=static, compile=self.compile, offload_kv=self.offload_kv)

    # -- voices ----------------------------------------------------------------------------------------

    def check_voice(self, voice: VoiceTemplate) -> None:
        """A cloning template with a clip, or a Kokoro preset (rendered to a reference clip)."""
        if voice.engine == "vibevoice" and isinstance(voice.spec, CloneSpec):
            return
        if voice.engine == "kokoro" and isinstance(voice.spec, KokoroSpec):
            return
        raise ValueError(f"voice {voice.id!r} cannot be used with VibeVoice: it needs a reference clip (a clone "
                         f"template) or a Kokoro preset, not a {voice.engine}/{voice.spec.kind} voice")

    def resolve_clips(self, script: Script, voices: dict[str, VoiceTemplate], cache_dir: Path | None = None
                      ) -> dict[str, Clip]:
        """One checked reference clip per speaker; Kokoro stand-ins are cached in ``cache_dir`` so a resumed
        job reads back exactly the clip it started with."""
        missing = [s for s in script.speakers if s not in voices]
        if missing:
            raise ValueError(f"no voice for speaker(s) {', '.join(missing)}")
        clips = {}
        for speaker in script.speakers:
            template = voices[speaker]
            self.check_voice(template)
            language = next((line.language for line in script.lines if line.speaker == speaker), "en")
            cached = cache_dir / f"{_slug(speaker)}-{_digest(template.spec.model_dump())}.npy" if cache_dir else None
            if cached is not None and cached.exists() and isinstance(template.spec, KokoroSpec):
                from .processing import check_clip

                clips[speaker] = check_clip(np.load(cached), SAMPLE_RATE, f"Kokoro preset {template.id!r}")
                continue
            clips[speaker] = reference_clip(template, language)
            if cached is not None and isinstance(template.spec, KokoroSpec):
                write_atomic(cached, lambda f, a=clips[speaker].audio: np.save(f, a))
        return clips

    # -- planning --------------------------------------------------------------------------------------

    @property
    def tokenizer(self):
        """The tokenizer alone (planning and preflight need no weights)."""
        if self._loaded is not None:
            return self._loaded[1].tokenizer
        if getattr(self, "_tokenizer", None) is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.checkpoint.path)
        return self._tokenizer

    def plan(self, script: Script, clips: dict[str, Clip]) -> list[Scene]:
        tokenizer = self.tokenizer
        positions = self.checkpoint.max_positions
        if self.scene_minutes:
            positions = min(positions, int(self.scene_minutes * 60 * FRAMES_PER_SECOND * FRAME_HEADROOM) + 2000)
        return plan_scenes(script.lines, clips, lambda text: len(tokenizer(text)["input_ids"]), positions)

    # -- rendering -------------------------------------------------------------------------------------

    def synthesize(self, segments: list[Segment], voices: dict[str, VoiceTemplate]) -> ChunkAudio:
        """Stateless use (a few segments): a throw-away job directory."""
        from ...render import RenderSettings

        lines = [Line(index=i, turn=i, speaker=s.speaker, text=s.text, language=s.language, source_line=i + 1,
                      column=1) for i, s in enumerate(segments)]
        speakers = list(dict.fromkeys(s.speaker for s in segments))
        with tempfile.TemporaryDirectory() as tmp:
            result = self.render_job(Path(tmp), Script(lines=lines, speakers=speakers), voices, RenderSettings())
        spans = [(segments[i].line_index, a, b) for i, (_, a, b) in enumerate(result.spans)]
        return ChunkAudio(result.audio, spans)

    def render_job(self, job_dir: Path, script: Script, voices: dict[str, VoiceTemplate], settings, *,
                   on_audio: Callable[[np.ndarray], None] | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   stop: threading.Event | None = None) -> ChunkAudio:
        """Render (or resume) the whole script; see the module docstring. Spans are estimated per line."""
        roles = speaker_roles(script)
        root = Path(job_dir).joinpath(*STATE_DIR)
        with self._lock:
            clips = self.resolve_clips(script, voices, root / "voices")
            scenes = self.plan(script, clips)
            self.warnings = [w for clip in clips.values() for w in clip.warnings]
            if len(scenes) > 1:
                self.warnings.append("the script is longer than the model's context; it is rendered as "
                                     + "; ".join(self.scene_summary(script, clips)))
            options = self.options(settings)
            identity = self._identity(script, roles, clips, settings, options)
            _check_root(root, identity, scenes)
            budget = int(settings.max_minutes * 60 * FRAMES_PER_SECOND)
            estimate = sum(math.ceil(s.estimated_frames) for s in scenes)
            pieces, spans, used, offset = [], [], 0, 0
            gap = np.zeros(int(settings.turn_gap * SAMPLE_RATE), np.float32)
            for scene in scenes:
                if used >= budget:
                    break
                if pieces:  # a short pause between scenes, streamed in order
                    pieces.append(gap)
                    offset += gap.size
                    if on_audio is not None and gap.size:
                        on_audio(gap)
                inputs = build_inputs(self.processor, [conversation(
                    scene.lines, roles, {s: c for s, c in clips.items() if s in {ln.speaker for ln in scene.lines}})])
                prompt_length = int(inputs["input_ids"].shape[1])
                max_frames = min(self.checkpoint.max_positions - prompt_length, budget - used,
                                 math.ceil(scene.estimated_frames * FRAME_HEADROOM * 2) + 75)
                done_before = used

                def report(steps: int, done_before=done_before) -> None:
                    if progress is not None:
                        progress(done_before + steps, max(estimate, done_before + steps))

                def frame(rows, audio) -> None:
                    if on_audio is not None:
                        on_audio(audio[0].float().cpu().numpy().astype(np.float32))

                extra = self.logits_processors(scene.index, prompt_length) if self.logits_processors else None
                store = StateStore(root / f"scene-{scene.index:03d}")
                (audio,) = run(self.model, inputs, options, max_frames=max_frames, chunk_frames=self.chunk_frames,
                               seed=settings.seed + scene.index, store=store, identity={"fingerprint": identity},
                               on_frame=frame, progress=report, stop=stop, logits_processors=extra)
                used += math.ceil(audio.size / 3200)
                if not all((store.progress() or {}).get("finished", [True])):
                    self.warnings.append(f"scene {scene.index + 1} reached its frame limit ({max_frames} frames) before "
                                         "the model ended it; the end may be cut (raise max_minutes?)")
                pieces.append(audio)
                spans += _estimate_spans(scene.lines, offset, audio.size)
                offset += audio.size
            full = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
            return ChunkAudio(full.astype(np.float32), spans)

    def render_batch(self, jobs: list[tuple[Script, dict[str, VoiceTemplate]]], settings,
                     progress: Callable[[int, int], None] | None = None) -> list[ChunkAudio]:
        """Several short scripts as one left-padded batch (for queues of short jobs: more audio per second
        of GPU time). Each row has its own speakers, voices and carried state; rows that finish early are
        held at EOS while the others go on. Not resumable (short jobs are cheap to redo), one scene per
        script, and a row's audio differs from rendering it alone (the diffusion noise is drawn for the
        whole batch), though it is the same for the same batch and seed."""
        with self._lock:
            prompts, plans = [], []
            for script, voices in jobs:
                roles = speaker_roles(script)
                clips = self.resolve_clips(script, voices)
                scenes = self.plan(script, clips)
                if len(scenes) > 1:
                    raise ValueError("a script longer than one context cannot be batched; render it on its own")
                prompts.append(conversation(script.lines, roles, clips))
                plans.append(scenes[0])
            inputs = build_inputs(self.processor, prompts)
            prompt_length = int(inputs["input_ids"].shape[1])
            budget = int(settings.max_minutes * 60 * FRAMES_PER_SECOND)
            max_frames = min(self.checkpoint.max_positions - prompt_length, budget,
                             max(math.ceil(p.estimated_frames * FRAME_HEADROOM * 2) + 75 for p in plans))
            extra = self.logits_processors(-1, prompt_length) if self.logits_processors else None
            report = (lambda steps: progress(steps, max_frames)) if progress else None
            audio = run(self.model, inputs, self.options(settings), max_frames=max_frames,
                        chunk_frames=self.chunk_frames, seed=settings.seed, progress=report, logits_processors=extra)
            return [ChunkAudio(a, _estimate_spans(script.lines, 0, a.size)) for a, (script, _) in zip(audio, jobs)]

    def scene_summary(self, script: Script, clips: dict[str, Clip]) -> list[str]:
        """Where scene boundaries fall (for preflight and the page)."""
        start, out = 0.0, []
        for scene in self.plan(script, clips):
            out.append(scene.describe(start))
            start += scene.estimated_frames / FRAMES_PER_SECOND
        return out

    def _identity(self, script: Script, roles, clips, settings, options: GenerationOptions) -> str:
        """A hash of everything that shapes the audio; chunk size is left out (it does not)."""
        identity = {
            "engine": self.version, "lines": [(roles[ln.speaker], ln.text) for ln in script.lines],
            "clips": {roles[s]: c.digest() for s, c in clips.items()},
            "settings": {"seed": settings.seed, "max_minutes": settings.max_minutes, "turn_gap": settings.turn_gap},
            "options": options.identity(), "model": self.checkpoint.identity(),
            "device": self.device.type, "dtype": configuration.dtype_name(self.dtype), "attention": self.attention,
            "forced": self.logits_processors is not None,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _check_root(root: Path, identity: str, scenes: list[Scene]) -> None:
    """Refuse to continue a state that belongs to something else; record what this state is for."""
    from .generation import StateMismatch

    marker = root / "render.json"
    if marker.exists():
        saved = json.loads(marker.read_text("utf-8"))
        if saved.get("fingerprint") != identity:
            raise StateMismatch(
                f"{root} holds a VibeVoice render of a different script, voices, settings, model or device "
                f"(saved {saved.get('fingerprint', '?')[:8]}, now {identity[:8]}); re-render from scratch "
                "(--force) or restore what changed")
        return
    text = json.dumps({"fingerprint": identity, "scenes": [[ln.index for ln in s.lines] for s in scenes]})
    write_atomic(marker, lambda f: f.write(text.encode("utf-8")))


def _estimate_spans(lines: list[Line], offset: int, samples: int) -> list[tuple[int, int, int]]:
    """Share a scene's audio among its lines in proportion to their estimated speaking time."""
    weights = np.array([max(1, _frames(line)) for line in lines], dtype=np.float64)
    edges = np.round(np.concatenate([[0], np.cumsum(weights)]) / weights.sum() * samples).astype(int)
    return [(line.index, offset + int(a), offset + int(b)) for line, a, b in zip(lines, edges[:-1], edges[1:])]


def _frames(line: Line) -> int:
    from .processing import estimated_frames

    return estimated_frames(line)


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)[:32]

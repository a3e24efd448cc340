"""The VibeVoice engine: a whole script in one resumable, long-form generation.

Unlike the stateless engines, VibeVoice reads the entire script (all speakers, all lines) in its prompt
and speaks it as one continuous stream, so the renderer hands it the whole job (``render_job``)
instead of line-sized chunks. Inside, the script is split into scenes only where the model's context
would overflow, each scene is generated in chunk calls with carried state (``generation``), the state
is saved after every chunk under ``job_dir/state/vibevoice``, and a later call resumes from there when
script, voices, settings, model and device are unchanged. Line timings are estimates: the model
produces no turn markers.

Which reference the audio matches: Microsoft's original inference code (the community fork
vibevoice-community/VibeVoice, ``modular/modeling_vibevoice_inference.py`` with its processor and
demos), not transformers' ``VibeVoiceForConditionalGeneration.generate()`` as called plainly. The
model was trained and published with the original, so where the two differ the original decides:

* no token-level CFG: with ``guidance_scale != 1`` transformers' ``generate()`` also switches on its
  generic token-level CFG logits processor, which the original does not have (VibeVoice's guidance
  is for the diffusion head only). It changes which control tokens the model picks (when speech
  starts and ends), costs one extra LM forward per frame and a third, growing KV cache, and cannot be
  carried across chunk calls. The engine drops it on purpose (``state.py``);
* the codec streaming caches are zeroed at the end of a speech segment, as the original does;
* reference clips are cast to the model's dtype (``speech_tensors.to(self.dtype)``); bf16 on CUDA,
  fp32 on MPS and CPU, fp16 only on request (``configuration.choose_dtype``); FlashAttention 2 with a
  fallback to SDPA and a warning;
* every prompt (scene) numbers its voices 0..k-1 in order of appearance, and curly apostrophes are
  made straight (``processing``).

For the same control tokens and seed, a single speech segment is bit-identical to a plain
``generate()`` call (the tests check this); what differs is which tokens a real model chooses and
the audio after a segment boundary.
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

from ...audio import SAMPLE_RATE
from ...errors import BadInput
from ...job.model import RenderSettings
from ...script import Line, Script
from ...voices import CloneSpec, KokoroSpec, VoiceTemplate
from ..base import Capabilities, ChunkAudio, Engine, Segment
from . import configuration
from .generation import DEFAULT_CHUNK_FRAMES, GenerationOptions, StateMismatch, StateStore, run, write_atomic
from .processing import (
    FRAME_HEADROOM,
    FRAMES_PER_SECOND,
    Clip,
    Scene,
    build_inputs,
    check_clip,
    conversation,
    estimated_frames,
    plan_scenes,
    reference_clip,
    scene_roles,
    speaker_roles,
)
from .state import PINNED_TRANSFORMERS, check_transformers

STATE_DIR = ("state", "vibevoice")
# Seconds of compute per second of audio, for estimates: measured 60-100x on a 2-core CPU (1.5B, fp32);
# the GPU figures are rough guides until measured (bench/bench_vibevoice_gpu.py measures them).
TYPICAL_RTF = {"cpu": 80.0, "mps": 4.0, "cuda": 0.8}


class VibeVoiceEngine(Engine):
    capabilities = Capabilities(
        name="vibevoice", languages=frozenset({"en", "zh", "mixed"}), max_speakers=4, cloning=True,
        seeded=True, plan_fields=frozenset(), max_chunk_chars=1_000_000, typical_rtf=TYPICAL_RTF["cpu"],
    )
    # /2: prompts are numbered per scene and apostrophes normalised (a state saved by /1 is not resumed)
    version = f"vibevoice-transformers-{PINNED_TRANSFORMERS}/2"

    def __init__(self, model_dir: str | Path | None = None, device: str | None = None, dtype: str | None = None,
                 attention: str | None = None, compile: bool = False, chunk_frames: int = DEFAULT_CHUNK_FRAMES,
                 offload_kv: bool = False, scene_minutes: float | None = None):
        check_transformers()
        self.checkpoint = configuration.inspect_checkpoint(model_dir)
        self.device = configuration.choose_device(device)
        # dtype and attention warnings (fp16 on request, no FlashAttention 2): repeated in every render's warnings
        self.setup_warnings: list[str] = []
        self.dtype = configuration.choose_dtype(self.device, dtype, self.setup_warnings)
        self.attention = configuration.choose_attention(self.device, attention, self.setup_warnings)
        self.compile = compile
        self.chunk_frames = chunk_frames
        if offload_kv and self.device.type != "cuda":
            raise BadInput("offload_kv moves the KV cache from the GPU to CPU RAM; it needs a CUDA device")
        self.offload_kv = offload_kv  # memory lever (see preflight): KV cache in CPU RAM
        self.scene_minutes = scene_minutes  # memory lever: shorter scenes, smaller KV cache
        self.capabilities = replace(VibeVoiceEngine.capabilities, typical_rtf=TYPICAL_RTF.get(self.device.type, 80.0))
        # Test/experiment hook: (scene index, prompt length) -> extra logits processors. Random test
        # weights cannot choose control tokens, so tests force them; users never set this.
        self.logits_processors: Callable[[int, int], list] | None = None
        self.warnings: list[str] = list(self.setup_warnings)  # of the last render: + clips, scene cuts, frame limits
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
            self._loaded = configuration.load(self.checkpoint, self.device, self.dtype, self.attention,
                                              self.setup_warnings)
            # FlashAttention 2 may have failed to initialise: the identity records what is really used
            self.attention = self._loaded[0].config.text_config._attn_implementation
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
        raise BadInput(f"voice {voice.id!r} cannot be used with VibeVoice: it needs a reference clip (a clone "
                         f"template) or a Kokoro preset, not a {voice.engine}/{voice.spec.kind} voice")

    def resolve_clips(self, script: Script, voices: dict[str, VoiceTemplate], cache_dir: Path | None = None
                      ) -> dict[str, Clip]:
        """One checked reference clip per speaker; Kokoro stand-ins are cached in ``cache_dir`` so a resumed
        job reads back exactly the clip it started with."""
        missing = [s for s in script.speakers if s not in voices]
        if missing:
            raise BadInput(f"no voice for speaker(s) {', '.join(missing)}")
        clips = {}
        for speaker in script.speakers:
            template = voices[speaker]
            self.check_voice(template)
            language = next((line.language for line in script.lines if line.speaker == speaker), "en")
            cached = cache_dir / f"{_slug(speaker)}-{_digest(template.spec.model_dump())}.npy" if cache_dir else None
            if cached is not None and cached.exists() and isinstance(template.spec, KokoroSpec):
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
        """Stateless use (a few segments): a throw-away job directory. Of each segment only ``line_index``,
        ``speaker``, ``text`` and ``language`` are used (VibeVoice takes no per-line delivery)."""
        lines = [Line(index=i, turn=i, speaker=s.speaker, text=s.text, language=s.language, source_line=i + 1,
                      column=1) for i, s in enumerate(segments)]
        speakers = list(dict.fromkeys(s.speaker for s in segments))
        with tempfile.TemporaryDirectory() as tmp:
            result = self.render_job(Path(tmp), Script(lines=lines, speakers=speakers), voices, RenderSettings())
        spans = [(segments[i].line_index, a, b) for i, (_, a, b) in enumerate(result.spans)]
        return ChunkAudio(result.audio, spans)

    def render_job(self, job_dir: Path, script: Script, voices: dict[str, VoiceTemplate], settings: RenderSettings,
                   *, progress: Callable[[int, int], None] | None = None,
                   stop: threading.Event | None = None) -> ChunkAudio:
        """Render (or resume) the whole script; see the module docstring. Spans are estimated per line."""
        roles = speaker_roles(script)  # checks the speaker count; each scene's prompt numbers its own
        root = Path(job_dir).joinpath(*STATE_DIR)
        with self._lock:
            clips = self.resolve_clips(script, voices, root / "voices")
            scenes = self.plan(script, clips)
            self._load()  # before the identity: it records the attention really in use
            self.warnings = list(self.setup_warnings) + [w for clip in clips.values() for w in clip.warnings]
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
                if pieces:  # a short pause between scenes
                    pieces.append(gap)
                    offset += gap.size
                inputs = build_inputs(self.processor, [self.scene_prompt(scene, clips)])
                prompt_length = int(inputs["input_ids"].shape[1])
                max_frames = min(self.checkpoint.max_positions - prompt_length, budget - used,
                                 math.ceil(scene.estimated_frames * FRAME_HEADROOM * 2) + 75)
                done_before = used

                def report(steps: int, done_before=done_before) -> None:
                    if progress is not None:
                        progress(done_before + steps, max(estimate, done_before + steps))

                extra = self.logits_processors(scene.index, prompt_length) if self.logits_processors else None
                store = StateStore(root / f"scene-{scene.index:03d}")
                (audio,) = run(self.model, inputs, options, max_frames=max_frames, chunk_frames=self.chunk_frames,
                               seed=settings.seed + scene.index, store=store, identity={"fingerprint": identity},
                               progress=report, stop=stop, logits_processors=extra)
                used += math.ceil(audio.size / 3200)
                if not all((store.progress() or {}).get("finished", [True])):
                    self.warnings.append(f"scene {scene.index + 1} reached its frame limit ({max_frames} frames) before "
                                         "the model ended it; the end may be cut (raise max_minutes?)")
                pieces.append(audio)
                spans += _estimate_spans(scene.lines, offset, audio.size)
                offset += audio.size
            full = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
            return ChunkAudio(full.astype(np.float32), spans)

    def scene_prompt(self, scene: Scene, clips: dict[str, Clip]) -> tuple[list[dict], list[np.ndarray]]:
        """One scene's prompt: its speakers numbered 0..k-1 in order of appearance in the scene, each with
        its own clip (the same clip in every scene, so a speaker keeps its voice)."""
        roles = scene_roles(scene.lines)
        return conversation(scene.lines, roles, {s: c for s, c in clips.items() if s in roles})

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
    weights = np.array([max(1, estimated_frames(line)) for line in lines], dtype=np.float64)
    edges = np.round(np.concatenate([[0], np.cumsum(weights)]) / weights.sum() * samples).astype(int)
    return [(line.index, offset + int(a), offset + int(b)) for line, a, b in zip(lines, edges[:-1], edges[1:])]


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)[:32]

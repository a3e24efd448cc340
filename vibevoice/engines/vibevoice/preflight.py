"""Before a render: will it fit, and how long will it take? Estimated from the config, without weights.

Peak memory has two phases, and the larger one counts:

* prompt: weights + the prompt's KV cache + the transient activations of encoding it (the σ-VAE
  encoder over the voice clips, then one LM forward over the whole prompt);
* end of the longest scene: weights + the main KV cache (prompt + every frame) + the CFG negative
  branch's KV cache (one entry per frame; it is masked, never truncated) + the codec streaming state
  + one decode step's activations (including the copy a growing KV cache makes of one layer).

On CUDA a fixed allowance covers the CUDA context and allocator slack. The estimator is checked
against peaks measured on tiny models (``bench/bench_vibevoice.py``, ``tests/test_vibevoice_preflight.py``).
When the estimate does not fit, the report lists levers with their effect: an offloaded or
quantized KV cache (transformers' own), shorter scenes, a smaller clip budget, a smaller dtype.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from pydantic import BaseModel

from ...script import Script
from ...voices import CloneSpec
from . import configuration
from .processing import FRAME_HEADROOM, FRAMES_PER_SECOND, HOP

GIB = 1024**3
CUDA_OVERHEAD = int(0.45 * GIB)  # CUDA context + caching-allocator slack, measured typical on 8-24 GiB GPUs
DEFAULT_CLIP_SECONDS = 10.0  # assumed per speaker when no voices are given
_BYTES = {torch.float32: 4, torch.float16: 2, torch.bfloat16: 2}


class MemoryItem(BaseModel):
    name: str
    bytes: int
    note: str = ""


class Lever(BaseModel):
    """One way to make a render fit, with the peak it would give."""

    name: str
    how: str
    peak_bytes: int
    fits: bool


class PreflightReport(BaseModel):
    checkpoint: str
    model: str
    device: str
    dtype: str
    budget_bytes: int | None
    speakers: int
    lines: int
    audio_minutes: float
    frames: int
    prompt_tokens: int
    scenes: list[str]
    prompt_phase: list[MemoryItem]
    end_phase: list[MemoryItem]
    peak_bytes: int
    seconds: float
    fits: bool
    warnings: list[str] = []
    levers: list[Lever] = []

    def summary(self) -> str:
        """A human summary: the numbers, the verdict, and what to do when it does not fit."""
        g = lambda b: f"{b / GIB:.2f} GiB"  # noqa: E731
        out = [f"{self.model} on {self.device} ({self.dtype}): {self.speakers} speaker(s), {self.lines} lines, "
               f"~{self.audio_minutes:.1f} min of audio = {self.frames} frames, prompt {self.prompt_tokens} tokens, "
               f"{len(self.scenes)} scene(s)"]
        out += [f"  {s}" for s in self.scenes] if len(self.scenes) > 1 else []
        for title, items in (("prompt phase", self.prompt_phase), ("end of longest scene", self.end_phase)):
            out.append(f"  {title}: {g(sum(i.bytes for i in items))}")
            out += [f"    {i.name:<34} {g(i.bytes):>10}  {i.note}" for i in items]
        budget = f" of {g(self.budget_bytes)} available" if self.budget_bytes else ""
        verdict = "fits" if self.fits else "does NOT fit"
        out.append(f"  peak ≈ {g(self.peak_bytes)}{budget}: {verdict}; time ≈ {_duration(self.seconds)}")
        out += [f"  warning: {w}" for w in self.warnings]
        if self.levers:
            out.append("  levers:")
            out += [f"    {lv.name:<34} peak {g(lv.peak_bytes):>10} {'fits' if lv.fits else 'too big'}  ({lv.how})"
                    for lv in self.levers]
        return "\n".join(out)


# ------------------------------------------------------------------------------------------------------
# The estimator


def kv_bytes_per_token(text_config, dtype_bytes: int) -> int:
    """Keys + values of every layer for one position."""
    head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // text_config.num_attention_heads
    return 2 * text_config.num_hidden_layers * text_config.num_key_value_heads * head_dim * dtype_bytes


def codec_state_bytes(config, dtype_bytes: int, batch: int = 1) -> int:
    """The streaming conv caches of the acoustic decoder and the semantic encoder (left pad × channels)."""
    from transformers import AutoModel

    total = 0
    with torch.device("meta"):
        decoder = AutoModel.from_config(config.audio_config).decoder
        semantic = AutoModel.from_config(config.semantic_model_config)
    for module in [*decoder.modules(), *semantic.modules()]:
        if hasattr(module, "left_pad") and hasattr(module, "in_channels"):
            total += module.in_channels * module.left_pad
    return total * dtype_bytes * batch


def codec_activation_bytes(codec_config, samples: int, dtype_bytes: int, batch: int = 1) -> int:
    """Peak transient of one σ-VAE pass (encoder or decoder) over ``samples``.

    Live elements ≈ samples × ((2·ffn_expansion + 1.8)·num_filters + 20): the first (and second)
    stages hold the most, the ConvNeXt FFN at ``ffn_expansion`` × width twice (its output and the
    activation) plus padding copies and residuals. Fitted on peaks measured with the profiler for
    widths 2 and 8 (encoder and decoder agree within 5 %); the same formula holds for deeper stacks.
    Those peaks were taken on AVX-512 CPUs, where oneDNN pads channels to blocks of 16; with AVX2's
    blocks of 8 the narrowest (tiny) codecs hold up to ~25 % less, so there it is an upper bound.
    """
    per_sample = (2 * codec_config.ffn_expansion + 1.8) * codec_config.num_filters + 20
    return int(samples * per_sample) * dtype_bytes * batch


def lm_prefill_activation_bytes(text_config, tokens: int, dtype_bytes: int, batch: int = 1) -> int:
    """One decoder layer's transients over the whole prompt (layers run one after another)."""
    h, i = text_config.hidden_size, text_config.intermediate_size
    kv_dim = 2 * text_config.num_key_value_heads * (getattr(text_config, "head_dim", None)
                                                    or h // text_config.num_attention_heads)
    # residual stream, its norm, embeddings and attention output (4 x hidden), q/k/v, and the MLP's
    # gate/up/product (3 x intermediate); SDPA never materializes the attention matrix.
    return tokens * batch * (4 * h + kv_dim + 3 * i) * dtype_bytes


def estimate(config, dtype: torch.dtype, *, prompt_tokens: int, frames: int, clip_samples: list[int],
             batch: int = 1, kv_cache: str = "dynamic", token_cfg: bool = False, device_type: str = "cuda",
             parameters: int | None = None, chunk_frames: int = 32) -> tuple[list[MemoryItem], list[MemoryItem]]:
    """Memory items of the prompt phase and of the end of a scene, for one scene of ``frames`` frames.

    ``kv_cache``: "dynamic" (default), "offloaded" (transformers keeps ~2 layers on the device, the rest
    in CPU RAM), "quantized-int4" / "quantized-int2" (transformers' QuantizedCache: int4/int2 with
    a residual of 128 positions in full precision; needs optimum-quanto or hqq).
    """
    b = _BYTES[dtype]
    text = config.text_config
    if parameters is None:
        from transformers import VibeVoiceForConditionalGeneration

        with torch.device("meta"):
            parameters = sum(p.numel() for p in VibeVoiceForConditionalGeneration(config).parameters())
    weights = parameters * b
    per_token = kv_bytes_per_token(text, b) * batch

    def kv(tokens: int) -> int:
        layers = text.num_hidden_layers
        if kv_cache == "offloaded":
            return per_token * tokens * min(2, layers) // layers
        if kv_cache.startswith("quantized"):
            bits = 4 if kv_cache.endswith("int4") else 2
            resident = min(tokens, 128)
            quantized = (tokens - resident) * per_token * bits // (8 * b)
            return resident * per_token + quantized + (tokens - resident) * per_token // 32  # + scales/zeros
        return per_token * tokens

    overhead = [MemoryItem(name="CUDA context + allocator", bytes=CUDA_OVERHEAD)] if device_type == "cuda" else []
    padded = max(clip_samples, default=0)
    clip_act = codec_activation_bytes(config.audio_config, padded, b, len(clip_samples)) if clip_samples else 0
    lm_act = lm_prefill_activation_bytes(text, prompt_tokens, b, batch)
    prompt_kv = kv(prompt_tokens)
    # The clips are encoded first (the KV cache is still empty), then the LM runs over the prompt.
    prompt_phase = [
        MemoryItem(name="weights", bytes=weights, note=f"{parameters / 1e9:.3f} B parameters"),
        MemoryItem(name="prompt encoding", bytes=max(clip_act, prompt_kv + lm_act),
                   note=f"max(clip encoder {clip_act / 2**20:.0f} MiB, prompt KV {prompt_kv / 2**20:.0f} MiB + "
                        f"LM prefill {lm_act / 2**20:.0f} MiB)"),
        *overhead,
    ]
    layer_kv = per_token * (prompt_tokens + frames) // text.num_hidden_layers
    # The acoustic decoder and then the semantic encoder run over one frame (one after the other),
    # and a growing KV cache copies one layer's keys or values at a time.
    decode = (max(codec_activation_bytes(config.audio_config, HOP, b, batch),
                  codec_activation_bytes(config.semantic_model_config, HOP, b, batch)) + layer_kv // 2)
    end_phase = [
        MemoryItem(name="weights", bytes=weights),
        MemoryItem(name="KV cache, main branch", bytes=kv(prompt_tokens + frames),
                   note=f"{prompt_tokens + frames} tokens x {per_token // batch / 1024:.0f} KiB"
                        + (f" ({kv_cache})" if kv_cache != "dynamic" else "")),
        MemoryItem(name="KV cache, CFG negative branch", bytes=kv(frames + 1), note=f"{frames + 1} tokens"),
    ]
    if token_cfg:
        end_phase.append(MemoryItem(name="KV cache, token-level CFG (quirk)", bytes=kv(frames + 1)))
    # Decoded frames (float32 on the host after each chunk; on a GPU only the current chunk stays there).
    audio_frames = frames if device_type == "cpu" else min(frames, chunk_frames)
    end_phase += [
        MemoryItem(name="generated audio", bytes=audio_frames * HOP * 4 * batch,
                   note="all of it in RAM" if device_type == "cpu" else "one chunk on the device"),
        MemoryItem(name="codec streaming state", bytes=codec_state_bytes(config, b, batch)),
        MemoryItem(name="decode-step activations", bytes=decode, note="codec pass of one frame + KV growth copy"),
        *overhead,
    ]
    return prompt_phase, end_phase


def available_bytes(device: torch.device) -> int | None:
    """What the device offers: free CUDA memory, or the host's available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def preflight(script: Script, model_dir: Path | str | None, settings, device: str | None = None,
              dtype: str | None = None, *, voices: dict | None = None, clip_seconds: float | None = None,
              budget_bytes: int | None = None, kv_cache: str = "dynamic", scene_minutes: float | None = None
              ) -> PreflightReport:
    """Estimate peak memory and time of rendering ``script``; ``fits`` says whether it fits the budget.

    Voices: with ``voices`` their clips are measured (Kokoro presets are assumed ~9 s), else every
    speaker gets ``clip_seconds`` (default 10 s). ``budget_bytes`` defaults to what the device offers;
    pass 8 GiB to ask "will it fit an 8 GiB GPU" on any machine.
    """
    from transformers import AutoTokenizer

    checkpoint = configuration.inspect_checkpoint(model_dir)
    dev = torch.device(device) if device else configuration.choose_device()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint.path)
    return report(script, settings, checkpoint.config, checkpoint.parameters,
                  lambda text: len(tokenizer(text)["input_ids"]), device=dev,
                  dtype=configuration.choose_dtype(dev, dtype), voices=voices, clip_seconds=clip_seconds,
                  budget_bytes=budget_bytes, kv_cache=kv_cache, scene_minutes=scene_minutes,
                  name=checkpoint.name, path=str(checkpoint.path))


def report(script: Script, settings, config, parameters: int, count_tokens, *, device: torch.device,
           dtype: torch.dtype, voices: dict | None = None, clip_seconds: float | None = None,
           budget_bytes: int | None = None, kv_cache: str = "dynamic", scene_minutes: float | None = None,
           name: str = "VibeVoice", path: str = "") -> PreflightReport:
    """The estimate for a config (no checkpoint directory needed: the benchmark uses real-size configs)."""
    from .engine import TYPICAL_RTF
    from .processing import plan_scenes, speaker_roles

    roles = speaker_roles(script)
    clips = _clip_stand_ins(script, voices, clip_seconds)
    context = int(config.text_config.max_position_embeddings)
    max_positions = context
    if scene_minutes:
        max_positions = min(context, int(scene_minutes * 60 * FRAMES_PER_SECOND * FRAME_HEADROOM) + 2000)
    scenes = plan_scenes(script.lines, clips, count_tokens, max_positions)
    budget_frames = int(settings.max_minutes * 60 * FRAMES_PER_SECOND)
    frames_total = min(sum(s.estimated_frames for s in scenes), budget_frames)
    biggest = max(scenes, key=lambda s: s.prompt_tokens + s.estimated_frames)
    frames = min(biggest.estimated_frames, budget_frames)
    clip_samples = [clips[s].audio_size for s in {ln.speaker for ln in biggest.lines} if s in clips]

    def peak_of(kind: str = kv_cache, samples=clip_samples, prompt=biggest.prompt_tokens, n=frames,
                dt=dtype) -> tuple[int, list, list]:
        p, e = estimate(config, dt, prompt_tokens=prompt, frames=n, clip_samples=samples,
                        kv_cache=kind, device_type=device.type, parameters=parameters)
        return max(sum(i.bytes for i in p), sum(i.bytes for i in e)), p, e

    peak, prompt_phase, end_phase = peak_of()
    budget = budget_bytes or available_bytes(device)
    fits = budget is None or peak <= budget
    warnings = [w for c in clips.values() for w in c.warnings]
    if len(scenes) > 1:
        warnings.append(f"the script is longer than one context of {max_positions} positions: "
                        f"{len(scenes)} scenes, each restarting from the voice prompts")
    levers = _levers(peak_of, budget, frames, biggest, clips, clip_samples, dtype) if not fits and budget else []
    seconds = frames_total / FRAMES_PER_SECOND * TYPICAL_RTF.get(device.type, 80.0)
    start, described = 0.0, []
    for scene in scenes:
        described.append(scene.describe(start))
        start += scene.estimated_frames / FRAMES_PER_SECOND
    from .configuration import dtype_name

    return PreflightReport(
        checkpoint=path, model=name, device=device.type, dtype=dtype_name(dtype), budget_bytes=budget,
        speakers=len(roles), lines=len(script.lines), audio_minutes=frames_total / FRAMES_PER_SECOND / 60,
        frames=frames_total, prompt_tokens=biggest.prompt_tokens, scenes=described, prompt_phase=prompt_phase,
        end_phase=end_phase, peak_bytes=peak, seconds=seconds, fits=fits, warnings=warnings, levers=levers)


def _levers(peak_of, budget: int, frames: int, biggest, clips, clip_samples: list[int], dtype) -> list["Lever"]:
    """What would make a render that does not fit fit: each memory lever with its estimated peak."""
    levers = []
    for kind, how in (("offloaded", "offload_kv=True (transformers' offloaded cache): KV in CPU RAM, ~2 "
                                    "layers on the GPU; slower steps"),
                      ("quantized-int4", "transformers' QuantizedCache int4 (needs optimum-quanto); "
                                         "not resumable by this engine yet")):
        value = peak_of(kind)[0]
        levers.append(Lever(name=f"KV cache {kind}", how=how, peak_bytes=value, fits=value <= budget))
    for minutes in (45, 30):
        if frames > minutes * 60 * FRAMES_PER_SECOND:
            n = int(minutes * 60 * FRAMES_PER_SECOND)
            prompt = int(biggest.prompt_tokens * n / max(frames, 1)) + sum(c.tokens for c in clips.values())
            value = peak_of(prompt=prompt, n=n)[0]
            levers.append(Lever(name=f"scenes of <= {minutes} min", how=f"scene_minutes={minutes}: the KV cache "
                                "restarts at each scene (voices kept; a seam in continuity)",
                                peak_bytes=value, fits=value <= budget))
    small = [min(s, 5 * 24000) for s in clip_samples]
    saved = sum(math.ceil(s / HOP) - math.ceil(t / HOP) for s, t in zip(clip_samples, small))
    value = peak_of(samples=small, prompt=biggest.prompt_tokens - saved)[0]
    levers.append(Lever(name="clips of <= 5 s", how="shorter reference clips (smaller prompt and encoder peak)",
                        peak_bytes=value, fits=value <= budget))
    if dtype == torch.float32:
        value = peak_of(dt=torch.bfloat16)[0]
        levers.append(Lever(name="bf16 weights", how="--dtype bf16", peak_bytes=value, fits=value <= budget))
    return levers


class _ClipSize:
    """What the estimator needs of a clip: its length (no audio is loaded for presets)."""

    def __init__(self, samples: int, warnings: list[str] | None = None):
        self.audio_size, self.warnings = samples, warnings or []

    @property
    def tokens(self) -> int:
        return math.ceil(self.audio_size / HOP)


def _clip_stand_ins(script: Script, voices: dict | None, clip_seconds: float | None) -> dict[str, _ClipSize]:
    from .processing import ClipError, reference_clip

    out = {}
    for speaker in script.speakers:
        template = (voices or {}).get(speaker)
        if template is not None and isinstance(template.spec, CloneSpec) and clip_seconds is None:
            try:
                clip = reference_clip(template)
                out[speaker] = _ClipSize(clip.audio.size, clip.warnings)
                continue
            except ClipError as err:
                out[speaker] = _ClipSize(0, [str(err)])
                continue
        seconds = clip_seconds if clip_seconds is not None else (9.0 if template is not None else DEFAULT_CLIP_SECONDS)
        out[speaker] = _ClipSize(int(seconds * 24000))
    return out


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"

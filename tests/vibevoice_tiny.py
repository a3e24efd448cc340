"""A tiny random VibeVoice checkpoint, built and saved at test time, in the converted ("-hf") layout.

No real weights are reachable from here, so tests and benchmarks build a model with the real
architecture at toy sizes (a 2-layer Qwen2, narrow σ-VAE codecs that still hop 3200 samples per frame,
a 1-layer diffusion head) and save it exactly as a converted checkpoint is laid out: ``config.json``,
``generation_config.json``, safetensors, tokenizer files, ``processor_config.json`` and
``chat_template.jinja``. The engine then loads it through the same code path a user's directory takes.

The tokenizer is offline too: a byte-level BPE with the 256 byte symbols and no merges, plus the four
special tokens VibeVoice uses. A random model never chooses the audio tokens by itself, so
``ForceTokens`` (a test-only logits processor) dictates the control tokens; diffusion, CFG and the
codecs stay real.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

SPECIALS = ["<|endoftext|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>"]
EOS, AUDIO_BOS, AUDIO_EOS, AUDIO = 256, 257, 258, 259

# The prompt format of the converted checkpoints (one audio placeholder per speaker with a clip; the
# processor expands it to one token per 3200 samples).
CHAT_TEMPLATE = (
    "{{ ' Transform the text provided by various speakers into speech output, utilizing the distinct voice of "
    "each respective speaker.\\n' }}"
    "{%- set ns = namespace(voiced='') %}"
    "{%- for m in messages %}{%- if m['content'] | selectattr('type', 'equalto', 'audio') | list | length > 0 "
    "and (',' ~ m['role'] ~ ',') not in (',' ~ ns.voiced) %}{%- set ns.voiced = ns.voiced ~ m['role'] ~ ',' %}"
    "{%- endif %}{%- endfor %}"
    "{%- if ns.voiced %}{{ ' Voice input:\\n' }}{%- for s in ns.voiced.rstrip(',').split(',') %}"
    "{{ ' Speaker ' ~ s ~ ':<|vision_start|><|vision_pad|><|vision_end|>\\n' }}{%- endfor %}{%- endif %}"
    "{{ ' Text input:\\n' }}"
    "{%- for m in messages %}{%- for item in m['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ ' Speaker ' ~ m['role'] ~ ': ' ~ item['text'] ~ '\\n' }}{%- endfor %}{%- endfor %}"
    "{{ ' Speech output:\\n<|vision_start|>' }}"
)


def tiny_config(hidden: int = 32, layers: int = 2, latent: int = 16, max_positions: int = 8192, heads: int = 4,
                kv_heads: int = 2, tie: bool = True, codec_init: float = 0.13):
    """``codec_init``: the σ-VAE codecs' weight init. The default 0.01 of the real configs makes a codec this
    narrow decode at ~1e-10 (below fp16's smallest number: fp16 audio would be all zeros and every
    comparison trivially equal); 0.13 gives speech-like levels (RMS ~0.07, peaks ~0.4) in every dtype,
    while 0.3 already overflows fp16 (the risk fp16 has on real weights)."""
    from transformers import VibeVoiceConfig

    codec = {"num_filters": 2, "depths": [1] * 7, "kernel_size": 3, "downsampling_ratios": [2, 2, 4, 5, 5, 8],
             "initializer_range": codec_init}
    return VibeVoiceConfig(
        text_config={
            "model_type": "qwen2", "vocab_size": 260, "hidden_size": hidden, "intermediate_size": 2 * hidden,
            "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
            "max_position_embeddings": max_positions, "tie_word_embeddings": tie,
        },
        audio_config={"model_type": "vibevoice_acoustic_tokenizer", "hidden_size": latent, **codec},
        semantic_model_config={"model_type": "vibevoice_acoustic_tokenizer_encoder", "hidden_size": 8, **codec},
        diffusion_head_config={"num_hidden_layers": 1, "intermediate_size": 2 * hidden, "frequency_embedding_size": 32},
        pad_token_id=EOS, eos_token_id=EOS, audio_bos_token_id=AUDIO_BOS, audio_eos_token_id=AUDIO_EOS,
        audio_token_id=AUDIO,
    )


def tiny_tokenizer():
    from transformers import Qwen2TokenizerFast

    vocab = {symbol: i for i, symbol in enumerate(_byte_symbols())}
    vocab.update({token: len(vocab) + i for i, token in enumerate(SPECIALS)})
    tokenizer = Qwen2TokenizerFast(vocab=vocab, merges=[], unk_token=None, bos_token=None,
                                   eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    assert tokenizer.convert_tokens_to_ids(SPECIALS) == [EOS, AUDIO_BOS, AUDIO_EOS, AUDIO]
    return tokenizer


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for raw bytes (GPT-2's table)."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return [chr(b) if b in kept else chr(next(extra)) for b in range(256)]


def build_tiny_checkpoint(directory: Path, seed: int = 0, dtype: torch.dtype = torch.float32,
                          max_shard_size: str | None = None, **sizes) -> Path:
    """Build, save and return a tiny random checkpoint directory (idempotent per directory)."""
    from transformers import (
        VibeVoiceAcousticTokenizerFeatureExtractor,
        VibeVoiceForConditionalGeneration,
        VibeVoiceProcessor,
    )

    directory = Path(directory)
    if (directory / "chat_template.jinja").exists():  # written last
        return directory
    torch.manual_seed(seed)
    model = VibeVoiceForConditionalGeneration(tiny_config(**sizes)).to(dtype).eval()
    generation = model.generation_config
    generation.guidance_scale = 1.3
    generation.max_new_tokens = 600
    generation.do_sample = False
    generation.noise_scheduler_class = "DPMSolverMultistepScheduler"
    generation.noise_scheduler_config = {"beta_schedule": "squaredcos_cap_v2", "prediction_type": "v_prediction"}
    generation._from_model_config = False  # else the scheduler settings are dropped on reload
    model.save_pretrained(directory, **({"max_shard_size": max_shard_size} if max_shard_size else {}))
    processor = VibeVoiceProcessor(feature_extractor=VibeVoiceAcousticTokenizerFeatureExtractor(),
                                   tokenizer=tiny_tokenizer(), chat_template=CHAT_TEMPLATE)
    processor.save_pretrained(directory)
    return directory


class ForceTokens:
    """Test-only logits processor: row ``b`` emits ``plans[b][k]`` at its k-th generated step.

    Steps past the end of a plan emit EOS. The step is counted from ``prompt_length``, so the same plan
    drives one long call or a chain of chunked calls identically.
    """

    def __init__(self, plans: list[list[int]], prompt_length: int):
        self.plans = plans
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        forced = torch.full_like(scores, float("-inf"))
        for row, plan in enumerate(self.plans[: scores.shape[0]]):
            step = input_ids.shape[1] - self.prompt_length
            forced[row, plan[step] if step < len(plan) else EOS] = 0.0
        return forced


def speech_plan(frames: int, segments: int = 1) -> list[int]:
    """Control tokens for ``segments`` speech segments of ``frames`` frames each, then EOS."""
    plan: list[int] = []
    for i in range(segments):
        if i:
            plan.append(AUDIO_BOS)
        plan += [AUDIO] * frames + [AUDIO_EOS]
    return plan + [EOS]


def write_original_layout(directory: Path) -> Path:
    """A directory shaped like Microsoft's original release (what users often download first)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({
        "model_type": "vibevoice", "acoustic_vae_dim": 64, "semantic_vae_dim": 128,
        "acoustic_tokenizer_config": {"model_type": "vibevoice_acoustic_tokenizer", "vae_dim": 64},
        "semantic_tokenizer_config": {"model_type": "vibevoice_semantic_tokenizer", "vae_dim": 128},
        "decoder_config": {"model_type": "qwen2", "hidden_size": 1536, "num_hidden_layers": 28},
        "diffusion_head_config": {"model_type": "vibevoice_diffusion_head", "head_layers": 4},
        "torch_dtype": "bfloat16",
    }))
    (directory / "preprocessor_config.json").write_text(json.dumps({"processor_class": "VibeVoiceProcessor"}))
    from safetensors.torch import save_file

    save_file({"model.acoustic_tokenizer.encoder.head.conv.conv.weight": torch.zeros(1),
               "model.prediction_head.final_layer.linear.weight": torch.zeros(1)},
              str(directory / "model-00001-of-00001.safetensors"))
    return directory


# ------------------------------------------------------------------------------------------------------
# Shared test helpers (imported by tests/test_vibevoice*.py)

VOICE_SCRIPT = "[Alice] Hello there, how are you today?\n[Ben] Fine, thanks. And you?\n[Alice] Very well."


def tiny_dir(tmp_path_factory) -> Path:
    """One tiny checkpoint per test session (the builder is idempotent per directory)."""
    return build_tiny_checkpoint(tmp_path_factory.getbasetemp() / "vibevoice-tiny")


def noise_clip(path: Path, seconds: float = 2.0, rate: int = 24000, channels: int = 1, seed: int = 0) -> Path:
    import numpy as np
    import soundfile as sf

    audio = (np.random.RandomState(seed).randn(int(seconds * rate), channels) * 0.1).astype("float32")
    sf.write(str(path), audio, rate)
    return path


def clone_voice(clip: Path, voice_id: str = "clone"):
    from vibevoice.voices import VoiceTemplate

    return VoiceTemplate(id=voice_id, name=voice_id, engine="vibevoice", languages=["en"],
                         spec={"kind": "clone", "clip": str(clip), "consent": True})


def forced_engine(model_dir: Path, plan: list[int], chunk_frames: int = 4, dtype: str | None = None):
    """An engine on the tiny checkpoint whose control tokens follow ``plan`` (for every scene/row)."""
    from vibevoice.engines.vibevoice import VibeVoiceEngine

    engine = VibeVoiceEngine(model_dir, device="cpu", chunk_frames=chunk_frames, dtype=dtype)
    engine.logits_processors = lambda scene, prompt_length: [ForceTokens([plan] * 8, prompt_length)]
    return engine


def measure_peak(fn, after: str | None = None) -> tuple[object, int]:
    """Run ``fn`` and return (its result, peak bytes of CPU tensor memory allocated while it ran, above
    what was allocated before). Uses the profiler's allocator events, so it counts every tensor,
    including transients. With ``after``, only the peak from the start of the ``record_function(after)``
    range on counts (what was allocated before it and is still alive is included)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    events = prof.profiler.kineto_results.events()
    since = min((e.start_ns() for e in events if after and e.name() == after), default=0)
    live = peak = 0
    for start, nbytes in sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]"):
        live += nbytes
        if start >= since:
            peak = max(peak, live)
    return result, peak


def kv_heavy_checkpoint(directory: Path) -> Path:
    """A tiny checkpoint whose KV cache is a large share of memory (for checking the estimator)."""
    return build_tiny_checkpoint(directory, hidden=256, layers=4, latent=16, heads=4, kv_heads=4)


def measured_working_memory(model, inputs, plan: list[int], frames: int, directory: Path,
                            last: int = 4) -> tuple[int, int]:
    """Measured bytes above the weights: (peak while encoding the prompt, peak over the last ``last``
    frames of a ``frames``-frame generation). The long middle runs unprofiled (the profiler is slow);
    its state is saved and loaded back inside the profiled window, so every live tensor is counted."""
    from torch.profiler import record_function

    from vibevoice.engines.vibevoice.generation import GenerationOptions, StateStore, generate_chunk

    options, length = GenerationOptions(), inputs["input_ids"].shape[1]
    force = lambda: [ForceTokens([plan], length)]  # noqa: E731
    torch.manual_seed(0)
    first, prompt_peak = measure_peak(lambda: generate_chunk(model, inputs, None, 1, options,
                                                             logits_processors=force()))
    middle = generate_chunk(model, inputs, first.carry, frames - last - 1, options, logits_processors=force())
    store = StateStore(directory)
    store.save({}, middle.carry, [torch.cat([first.audio[0], middle.audio[0]])])
    del first, middle

    def last_chunk():
        carry, audio, _ = store.load(model.config.text_config, model.device)
        with record_function("last-chunk"):
            result = generate_chunk(model, inputs, carry, last, options, logits_processors=force())
        return audio, result

    _, end_peak = measure_peak(last_chunk, after="last-chunk")
    return prompt_peak, end_peak


def measure_in_fresh_process(directory: Path, frames: int, clip_samples: int, state_dir: Path) -> dict:
    """:func:`measured_working_memory` for ``VOICE_SCRIPT`` in a new interpreter, one torch thread.

    The profiler counts every CPU allocation and free in the process while it runs: in a long pytest
    session a garbage collection of an earlier test's tensors, or another test's leftover thread,
    landing inside the window skews the peak by megabytes. A fresh process has nothing else alive."""
    import subprocess
    import sys

    code = ("import sys, json; sys.path.insert(0, sys.argv[1]); import vibevoice_tiny as t; "
            "print(json.dumps(t._measure(*sys.argv[2:])))")
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(directory), str(frames),
                           str(clip_samples), str(state_dir)], capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise AssertionError(done.stderr[-4000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _measure(directory: str, frames: str, clip_samples: str, state_dir: str) -> dict:
    import gc

    import numpy as np

    from vibevoice.engines.vibevoice import configuration
    from vibevoice.engines.vibevoice.processing import build_inputs, check_clip, conversation
    from vibevoice.script import parse_script

    torch.set_num_threads(1)
    frames, clip_samples = int(frames), int(clip_samples)
    checkpoint = configuration.inspect_checkpoint(Path(directory))
    model, processor = configuration.load(checkpoint, torch.device("cpu"), torch.float32, "sdpa")
    clips = ({"Alice": check_clip(np.random.RandomState(0).randn(clip_samples).astype(np.float32) * 0.1, 24000)}
             if clip_samples else {})
    inputs = build_inputs(processor, [conversation(parse_script(VOICE_SCRIPT).lines, {"Alice": "0", "Ben": "1"},
                                                   clips)])
    gc.collect()
    gc.disable()  # a collection inside a profiled window would count old frees against the peak
    prompt_peak, end_peak = measured_working_memory(model, inputs, speech_plan(frames + 10), frames, Path(state_dir))
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    return {"prompt_tokens": int(inputs["input_ids"].shape[1]), "weights": weights,
            "prompt_peak": prompt_peak, "end_peak": end_peak}

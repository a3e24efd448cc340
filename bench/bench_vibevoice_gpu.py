"""VibeVoice on a GPU: correctness in bf16 (SDPA and FlashAttention 2) and the cost of the real 1.5B shapes.

    python bench/bench_vibevoice_gpu.py                          # CUDA: a few minutes on one GPU
    python bench/bench_vibevoice_gpu.py --json results.json      # also write every figure as JSON
    python bench/bench_vibevoice_gpu.py --device cpu --quick     # proves the script runs (tiny model only)

No checkpoint or download is needed: every model is built here with random weights.

1. The tiny test model (``tests/vibevoice_tiny.py``) in bf16, with SDPA and, when ``flash_attn`` imports,
   FlashAttention 2: one ``generate()`` call against chunked calls with carried state, and a render
   stopped after two chunks, saved to disk and resumed from the saved state. Prints the largest sample
   difference (0 = bit-identical) and FlashAttention 2 against SDPA.
2. (CUDA) A full-size VibeVoice-1.5B config with random weights (the published shapes, so the same cost
   per step): seconds per frame with 1 k / 8 k / 32 k tokens of context, first-frame latency (prompt
   with two 10 s voice clips), throughput for batches of 1/2/4/8 through ``generation.run`` on a
   left-padded batch, and the peak CUDA memory at each point against ``vibevoice preflight``'s
   estimate (``vibevoice/engines/vibevoice/preflight.py``; its CUDA allowance is shown apart).

Random weights never choose the control tokens, so they are forced as the tests force them
(``ForceTokens``: speech frames, then end of speech); diffusion (10 steps, CFG 1.3), both LM branches and
the codecs run for real. ``--full-model tiny`` runs section 2's code with the tiny config (a check of
the script itself on any machine).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import vibevoice_tiny as tiny  # noqa: E402

from vibevoice.engines.vibevoice import configuration  # noqa: E402
from vibevoice.engines.vibevoice.generation import GenerationOptions, StateStore, generate_chunk, run  # noqa: E402
from vibevoice.engines.vibevoice.preflight import CUDA_OVERHEAD, GIB, estimate  # noqa: E402
from vibevoice.engines.vibevoice.processing import build_inputs, check_clip, conversation, scene_roles  # noqa: E402
from vibevoice.script import parse_script  # noqa: E402

MIB = 2**20
RESULTS: dict = {}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clip(seconds: float, seed: int):
    return check_clip(np.random.RandomState(seed).randn(int(seconds * 24000)).astype(np.float32) * 0.1, 24000)


def script_prompt(processor, rows: int = 1, clip_seconds: float = 2.0):
    """Prompts of the test script (rows of different lengths: real left padding), each speaker with a clip."""
    script = parse_script(tiny.VOICE_SCRIPT)
    clips = {"Alice": clip(clip_seconds, 1), "Ben": clip(clip_seconds, 2)}
    prompts = []
    for row in range(rows):
        lines = script.lines[: 1 + row % len(script.lines)] if rows > 1 else script.lines
        prompts.append(conversation(lines, scene_roles(lines), clips))
    return build_inputs(processor, prompts)


def force(plan: list[int], inputs, rows: int = 1) -> list:
    return [tiny.ForceTokens([plan] * rows, inputs["input_ids"].shape[1])]


def compare(a: np.ndarray, b: np.ndarray) -> dict:
    if a.shape != b.shape:
        return {"same_length": False, "samples": [a.size, b.size]}
    peak = float(np.abs(b).max()) or 1.0
    return {"same_length": True, "bit_identical": bool(np.array_equal(a, b)),
            "max_abs_diff_over_peak": float(np.abs(a - b).max() / peak), "finite": bool(np.isfinite(a).all())}


# -- 1: the tiny model in bf16 ------------------------------------------------------------------------------


def tiny_section(device: torch.device, work: Path, frames: int) -> None:
    print(f"\n1. tiny model, bf16 on {device}: one call vs chunked (4 frames/call) vs saved + resumed")
    checkpoint = configuration.inspect_checkpoint(tiny.build_tiny_checkpoint(work / "tiny"))
    attentions = ["sdpa"]
    problem = configuration.flash_attention_problem() if device.type == "cuda" else "it needs CUDA"
    if problem is None:
        attentions.append("flash_attention_2")
    else:
        print(f"   FlashAttention 2 skipped: {problem}")
    RESULTS["tiny"] = {"flash_attention_2": problem or "used"}
    plan, audio_by_attention = tiny.speech_plan(frames), {}
    for attention in attentions:
        notes: list[str] = []
        model, processor = configuration.load(checkpoint, device, torch.bfloat16, attention, notes)
        used = model.config.text_config._attn_implementation
        inputs = script_prompt(processor)
        options = GenerationOptions()
        kwargs = dict(max_frames=len(plan) + 2, seed=0, logits_processors=force(plan, inputs))
        start = time.perf_counter()
        one = run(model, inputs, options, chunk_frames=10**6, **kwargs)[0]
        sync(device)
        seconds = time.perf_counter() - start
        chunked = run(model, inputs, options, chunk_frames=4, **kwargs)[0]
        store, stop = StateStore(work / f"state-{attention}"), threading.Event()
        try:
            run(model, inputs, options, chunk_frames=4, store=store, identity={"bench": attention}, stop=stop,
                progress=lambda steps: stop.set() if steps >= 8 else None, **kwargs)
        except KeyboardInterrupt:
            pass
        saved_chunks = store.progress()["chunks"]
        resumed = run(model, inputs, options, chunk_frames=4, store=store, identity={"bench": attention}, **kwargs)[0]
        row = {"attention_used": used, "warnings": notes, "frames": int(one.size // 3200),
               "rms": float(np.sqrt(np.mean(one.astype(np.float64) ** 2))), "one_call_seconds": seconds,
               "chunked_vs_one_call": compare(chunked, one), "saved_chunks_before_resume": saved_chunks,
               "resumed_vs_one_call": compare(resumed, one)}
        RESULTS["tiny"][attention] = row
        audio_by_attention[used] = one
        print(f"   {attention:<18} (used {used}): {row['frames']} frames, rms {row['rms']:.3f}, one call "
              f"{seconds:.2f} s; chunked vs one call: {_verdict(row['chunked_vs_one_call'])}; resumed after "
              f"{saved_chunks} saved chunks: {_verdict(row['resumed_vs_one_call'])}")
        for note in notes:
            print(f"   warning: {note}")
        del model
    if len(audio_by_attention) == 2:
        fa_vs_sdpa = compare(audio_by_attention["flash_attention_2"], audio_by_attention["sdpa"])
        RESULTS["tiny"]["flash_attention_2_vs_sdpa"] = fa_vs_sdpa
        print(f"   FlashAttention 2 vs SDPA (same seed): {_verdict(fa_vs_sdpa)}")


def _verdict(result: dict) -> str:
    if not result["same_length"]:
        return f"DIFFERENT LENGTHS {result['samples']}"
    if result["bit_identical"]:
        return "bit-identical"
    return f"max |diff| = {result['max_abs_diff_over_peak']:.2e} of peak" + ("" if result["finite"] else ", NOT FINITE")


# -- 2: full-size shapes with random weights -----------------------------------------------------------------


def full_model(name: str, device: torch.device, attention: str):
    """A model with the published shapes and random weights; special tokens moved to the tiny tokenizer's
    ids (the vocabulary keeps its full size), so the tiny processor builds its prompts."""
    from transformers import VibeVoiceForConditionalGeneration

    config = configuration.published_config("VibeVoice-1.5B") if name == "1.5B" else tiny.tiny_config()
    config.eos_token_id = config.pad_token_id = tiny.EOS
    config.audio_bos_token_id, config.audio_eos_token_id = tiny.AUDIO_BOS, tiny.AUDIO_EOS
    config.audio_token_id = tiny.AUDIO
    config.text_config._attn_implementation = attention
    torch.manual_seed(0)
    with torch.device(device):
        model = VibeVoiceForConditionalGeneration._from_config(config, dtype=torch.bfloat16).eval()
    generation = model.generation_config
    generation.eos_token_id = generation.pad_token_id = tiny.EOS
    generation.guidance_scale, generation.do_sample = 1.3, False
    generation.noise_scheduler_class = "DPMSolverMultistepScheduler"
    generation.noise_scheduler_config = {"beta_schedule": "squaredcos_cap_v2", "prediction_type": "v_prediction"}
    from transformers import VibeVoiceAcousticTokenizerFeatureExtractor, VibeVoiceProcessor

    processor = VibeVoiceProcessor(feature_extractor=VibeVoiceAcousticTokenizerFeatureExtractor(),
                                   tokenizer=tiny.tiny_tokenizer(), chat_template=tiny.CHAT_TEMPLATE)
    parameters = sum(p.numel() for p in model.parameters())
    return model, processor, parameters


def estimated_peak(model, parameters: int, *, prompt_tokens: int, frames: int, clip_samples: list[int],
                   batch: int = 1) -> dict:
    prompt_phase, end_phase = estimate(model.config, torch.bfloat16, prompt_tokens=prompt_tokens, frames=frames,
                                       clip_samples=clip_samples, batch=batch, device_type="cuda",
                                       parameters=parameters)
    peak = max(sum(i.bytes for i in prompt_phase), sum(i.bytes for i in end_phase))
    return {"estimate_bytes": peak, "estimate_without_cuda_allowance_bytes": peak - CUDA_OVERHEAD}


class Peak:
    """Peak CUDA memory of a block (allocated and reserved by PyTorch's allocator)."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.allocated = torch.cuda.max_memory_allocated(self.device)
            self.reserved = torch.cuda.max_memory_reserved(self.device)
        else:
            self.allocated = self.reserved = 0


def memory_row(peak: Peak, est: dict) -> dict:
    row = {"peak_allocated_bytes": peak.allocated, "peak_reserved_bytes": peak.reserved, **est}
    if peak.allocated:
        row["estimate_over_allocated"] = est["estimate_without_cuda_allowance_bytes"] / peak.allocated
    return row


def _mem(row: dict) -> str:
    if not row["peak_allocated_bytes"]:
        return f"estimate {row['estimate_bytes'] / GIB:.2f} GiB (no CUDA: nothing measured)"
    return (f"peak {row['peak_allocated_bytes'] / GIB:.2f} GiB allocated / {row['peak_reserved_bytes'] / GIB:.2f} "
            f"reserved; estimate {row['estimate_without_cuda_allowance_bytes'] / GIB:.2f} GiB + "
            f"{CUDA_OVERHEAD / GIB:.2f} CUDA allowance (x{row['estimate_over_allocated']:.2f} of allocated)")


def full_section(device: torch.device, name: str, quick: bool) -> None:
    attention = "flash_attention_2" if device.type == "cuda" and configuration.flash_attention_problem() is None \
        else "sdpa"
    start = time.perf_counter()
    try:
        model, processor, parameters = full_model(name, device, attention)
    except Exception as err:  # noqa: BLE001 - FlashAttention 2 that fails to initialise: SDPA, as the engine does
        if attention != "flash_attention_2":
            raise
        print(f"   FlashAttention 2 failed to initialise ({type(err).__name__}: {err}); using SDPA")
        attention = "sdpa"
        model, processor, parameters = full_model(name, device, attention)
    sync(device)
    print(f"\n2. VibeVoice-{name} shapes, random weights, bf16, {attention}, {device}: {parameters / 1e9:.3f} B "
          f"parameters (built in {time.perf_counter() - start:.1f} s)")
    section = RESULTS.setdefault("full", {"model": name, "attention": attention, "parameters": parameters})
    options = GenerationOptions()
    contexts = (1024, 8192, 32768) if name == "1.5B" else (256, 512, 1024)
    timed = 8 if quick else 16

    print(f"   seconds per frame by context ({timed} frames timed after 4 warm-up frames):")
    section["contexts"] = {}
    for context in contexts:
        try:
            ids = torch.randint(0, 256, (1, context), generator=torch.Generator().manual_seed(context))
            ids[0, -1] = tiny.AUDIO_BOS  # the prompt ends where speech starts
            inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            plan = [tiny.AUDIO] * (1 + 4 + timed + 4) + [tiny.AUDIO_EOS, tiny.EOS]
            torch.manual_seed(0)
            with Peak(device) as peak:
                t0 = time.perf_counter()
                first = generate_chunk(model, inputs, None, 1, options, logits_processors=force(plan, inputs))
                sync(device)
                first_frame = time.perf_counter() - t0
                warm = generate_chunk(model, inputs, first.carry, 4, options, logits_processors=force(plan, inputs))
                sync(device)
                t0 = time.perf_counter()
                generate_chunk(model, inputs, warm.carry, timed, options, logits_processors=force(plan, inputs))
                sync(device)
                per_frame = (time.perf_counter() - t0) / timed
            est = estimated_peak(model, parameters, prompt_tokens=context, frames=1 + 4 + timed, clip_samples=[])
            row = {"seconds_per_frame": per_frame, "realtime_factor": per_frame * 7.5,
                   "prefill_plus_first_frame_seconds": first_frame, **memory_row(peak, est)}
            section["contexts"][context] = row
            print(f"   {context:>6} tokens: {per_frame * 1000:7.1f} ms/frame (x{per_frame * 7.5:.2f} real time), "
                  f"prefill + first frame {first_frame:.2f} s; {_mem(row)}")
            del first, warm
        except Exception as err:  # noqa: BLE001 - report and go on: the other figures are still worth having
            _failed(section["contexts"], context, err)

    print("   first-frame latency (two speakers with 10 s clips, short script):")
    try:
        inputs = script_prompt(processor, clip_seconds=10.0)
        plan = tiny.speech_plan(8)
        latencies = []
        for attempt in range(3):
            marks: list[float] = []

            def on_frame(rows, audio, marks=marks):
                if not marks:
                    sync(device)
                    marks.append(time.perf_counter())

            torch.manual_seed(0)
            t0 = time.perf_counter()
            generate_chunk(model, inputs, None, 2, options, on_frame=on_frame, logits_processors=force(plan, inputs))
            latencies.append(marks[0] - t0)
        section["first_frame"] = {"prompt_tokens": int(inputs["input_ids"].shape[1]), "cold_seconds": latencies[0],
                                  "warm_seconds_median": statistics.median(latencies[1:])}
        print(f"   prompt {inputs['input_ids'].shape[1]} tokens: first frame after {latencies[0]:.3f} s cold, "
              f"{statistics.median(latencies[1:]):.3f} s warm")
    except Exception as err:  # noqa: BLE001
        _failed(section, "first_frame", err)

    frames = 32 if quick else 64
    print(f"   throughput by batch ({frames} frames per row, rows of different prompt lengths, generation.run):")
    section["batches"] = {}
    base = None
    for batch in (1, 2, 4, 8):
        try:
            inputs = script_prompt(processor, rows=batch, clip_seconds=5.0)
            plan = tiny.speech_plan(frames)
            torch.manual_seed(0)
            with Peak(device) as peak:
                t0 = time.perf_counter()
                audio = run(model, inputs, options, max_frames=len(plan) + 2, chunk_frames=32,
                            logits_processors=force(plan, inputs, batch))
                sync(device)
                wall = time.perf_counter() - t0
            seconds_of_audio = sum(a.size for a in audio) / 24000
            rate = seconds_of_audio / wall
            base = base or rate
            est = estimated_peak(model, parameters, prompt_tokens=int(inputs["input_ids"].shape[1]), frames=frames + 2,
                                 clip_samples=[5 * 24000] * 2, batch=batch)
            row = {"wall_seconds": wall, "audio_seconds": seconds_of_audio, "audio_seconds_per_second": rate,
                   "vs_batch_1": rate / base, **memory_row(peak, est)}
            section["batches"][batch] = row
            print(f"   batch {batch}: {wall:6.2f} s for {seconds_of_audio:5.1f} s of audio = {rate:5.2f} audio s/s "
                  f"(x{rate / base:.2f} of batch 1); {_mem(row)}")
        except Exception as err:  # noqa: BLE001
            _failed(section["batches"], batch, err)


def _failed(where: dict, key, err: Exception) -> None:
    where[key] = {"error": f"{type(err).__name__}: {err}"}
    print(f"   {key}: FAILED {type(err).__name__}: {err}")
    traceback.print_exc(limit=3)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def environment(device: torch.device) -> dict:
    import transformers

    env = {"device": str(device), "torch": torch.__version__, "transformers": transformers.__version__,
           "python": platform.python_version()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / GIB, 1), cuda=torch.version.cuda,
                   bf16_supported=torch.cuda.is_bf16_supported())
    try:
        import flash_attn

        env["flash_attn"] = flash_attn.__version__
    except Exception as err:  # noqa: BLE001
        env["flash_attn"] = f"unavailable ({type(err).__name__})"
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="fewer frames everywhere")
    parser.add_argument("--full-model", choices=["1.5B", "tiny", "none"], default=None,
                        help="section 2's shapes (default: 1.5B on CUDA, none elsewhere)")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # tiny models: thread start-up dominates, and a shared CPU swings
    RESULTS["environment"] = environment(device)
    print("environment: " + ", ".join(f"{k} {v}" for k, v in RESULTS["environment"].items()))
    work = Path(tempfile.mkdtemp(prefix="vibevoice-gpu-bench-"))
    started = time.perf_counter()
    try:
        tiny_section(device, work, 12 if args.quick else 24)
    except Exception as err:  # noqa: BLE001
        _failed(RESULTS, "tiny", err)
    full = args.full_model or ("1.5B" if device.type == "cuda" else "none")
    if full != "none":
        try:
            full_section(device, full, args.quick)
        except Exception as err:  # noqa: BLE001
            _failed(RESULTS, "full", err)
    else:
        print("\n2. full-size section skipped (needs CUDA; --full-model tiny checks its code on any device)")
    RESULTS["seconds"] = time.perf_counter() - started
    print(f"\ndone in {RESULTS['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(RESULTS, indent=1, default=str))
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()

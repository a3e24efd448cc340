"""VibeVoice engine benchmark on tiny random configs (CPU): carried state vs naive, memory, quirks, batching.

    nice .venv/bin/python bench/bench_vibevoice.py            # ~5 min on a shared 2-core CPU
    nice .venv/bin/python bench/bench_vibevoice.py --quick    # ~1 min, smaller numbers

Prints, all measured side by side in one run:

1. time per chunk early vs late in a long generation, with carried state (this engine) and the naive
   way (each chunk re-prefills the growing context of both CFG branches, then decodes the chunk);
2. memory growth per frame (carried state bytes after each chunk), against the estimator's slope;
3. the preflight estimate against the measured peak (profiler allocator events), both phases;
4. the two upstream quirks: token-level CFG (time per step, extra cache) and the codec caches not
   being reset at a segment end (how much the next segment's audio changes);
5. throughput against batch size for a queue of short jobs;
6. the preflight figure for VibeVoice-1.5B, bf16, 90 minutes, 4 speakers, against 8 GiB, with levers.

Times are CPU seconds of this process (``time.process_time``, one torch thread): the machine is shared,
and wall time swings 3x with the neighbours' load while CPU time does not.
Random weights: speed and memory are real, audio quality is meaningless. Control tokens are forced
(a test-only logits processor) so every row speaks exactly the planned number of frames.

On a GPU: ``bench/bench_vibevoice_gpu.py`` (bf16 with SDPA and FlashAttention 2, full-size 1.5B shapes:
seconds per frame by context, batch throughput through ``generation.run``, peak CUDA memory against
preflight, first-frame latency). ``--checkpoint DIR --device cuda`` runs this whole file on real weights.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from vibevoice_tiny import (AUDIO, ForceTokens, build_tiny_checkpoint, kv_heavy_checkpoint,  # noqa: E402
                            measured_working_memory, speech_plan)

from vibevoice.engines.vibevoice import configuration  # noqa: E402
from vibevoice.engines.vibevoice.generation import GenerationOptions, generate_chunk  # noqa: E402
from vibevoice.engines.vibevoice.preflight import GIB, estimate, kv_bytes_per_token, report  # noqa: E402
from vibevoice.engines.vibevoice.processing import build_inputs, check_clip, conversation  # noqa: E402
from vibevoice.job.model import RenderSettings  # noqa: E402
from vibevoice.script import parse_script  # noqa: E402

SCRIPT = "[Alice] Hello there, how are you today?\n[Ben] Fine, thanks. And you?\n[Alice] Very well."


def load(directory: Path, device: str = "cpu"):
    checkpoint = configuration.inspect_checkpoint(directory)
    dev = torch.device(device)
    model, processor = configuration.load(checkpoint, dev, configuration.choose_dtype(dev), "sdpa")
    return checkpoint, model, processor


def prompt(processor, clip_seconds: float = 2.0, rows: int = 1, seed: int = 0):
    script = parse_script(SCRIPT)
    prompts = []
    for row in range(rows):
        clip = check_clip(np.random.RandomState(seed + row).randn(int(clip_seconds * 24000)).astype(np.float32) * .1,
                          24000)
        lines = script.lines[: 1 + row % 3]  # rows of different lengths: real left padding
        prompts.append(conversation(lines, {"Alice": "0", "Ben": "1"}, {"Alice": clip}))
    return build_inputs(processor, prompts)


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# -- 1 + 2: carried vs naive, memory growth ------------------------------------------------------------------


def reprefill_seconds(model, length: int, negative_length: int) -> float:
    """What the naive way adds to a chunk: one fresh forward over each branch's whole context so far."""
    lm = model.model.language_model
    hidden = model.config.text_config.hidden_size
    start = time.process_time()
    with torch.no_grad():
        for n in (length, negative_length):
            lm(inputs_embeds=torch.randn(1, n, hidden, device=model.device, dtype=model.dtype), use_cache=True)
    sync(model.device)
    return time.process_time() - start


def carried_vs_naive(model, processor, frames: int, chunk: int) -> None:
    inputs = prompt(processor)
    length = inputs["input_ids"].shape[1]
    plan = [AUDIO] * frames + speech_plan(0)
    options, carry, rows = GenerationOptions(), None, []
    torch.manual_seed(0)
    while carry is None or carry.steps < frames:
        context = length + (carry.steps if carry else 0)
        negative = (carry.steps if carry else 0) + 1
        start = time.process_time()
        result = generate_chunk(model, inputs, carry, chunk, options, logits_processors=[ForceTokens([plan], length)])
        sync(model.device)
        carried = time.process_time() - start
        naive = carried + (reprefill_seconds(model, context, negative) if carry is not None else 0.0)
        carry = result.carry
        rows.append((len(rows) + 1, context, carried, naive, carry.nbytes()))
    print(f"\n1. time per chunk of {chunk} frames, carried state vs naive re-prefill (prompt {length} tokens)")
    print(f"{'chunk':>5} {'context':>8} {'carried s':>10} {'naive s':>10} {'naive/carried':>14} {'state MiB':>10}")
    for index, context, carried, naive, state in rows:
        print(f"{index:>5} {context:>8} {carried:>10.3f} {naive:>10.3f} {naive / carried:>14.2f} {state / 2**20:>10.2f}")
    early, late = rows[1], rows[-1]  # the first chunk includes the prompt
    print(f"late/early time per chunk: carried {late[2] / early[2]:.2f}x, naive {late[3] / early[3]:.2f}x; "
          f"whole run naive/carried = {sum(r[3] for r in rows) / sum(r[2] for r in rows):.2f}x")
    contexts = np.array([r[1] for r in rows[1:]], dtype=float)
    extra = np.array([r[3] - r[2] for r in rows[1:]])
    slope = float(np.polyfit(contexts, extra, 1)[0]) * 1000
    print(f"the naive way adds {slope:.3f} s per chunk for every 1000 tokens of context (fit over this run); "
          f"carried chunks cost the same early and late, up to attention over a longer cache")
    per_frame = (rows[-1][4] - rows[0][4]) / (rows[-1][1] - rows[0][1])
    expected = 2 * kv_bytes_per_token(model.config.text_config, torch.finfo(model.dtype).bits // 8)
    print(f"\n2. memory growth per frame (carried state): {per_frame / 1024:.2f} KiB/frame measured, "
          f"{expected / 1024:.2f} KiB/frame = 2 branches x KV per token (estimator); "
          f"+ {3200 * 4 / 1024:.1f} KiB/frame of float32 audio kept on the host")


# -- 3: estimator vs measured ----------------------------------------------------------------------------------


def estimator_check(checkpoint, model, processor, frames: int) -> None:
    print("\n3. preflight estimate vs measured peak (tensor bytes above the weights; profiler allocator events)")
    print(f"{'case':<22} {'phase':<8} {'measured MiB':>13} {'estimate MiB':>13} {'ratio':>6}")
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    for clip_seconds in (0.0, 4.0):
        script = parse_script(SCRIPT)
        clips = ({"Alice": check_clip(np.random.RandomState(0).randn(int(clip_seconds * 24000)).astype(np.float32)
                                      * .1, 24000)} if clip_seconds else {})
        inputs = build_inputs(processor, [conversation(script.lines, {"Alice": "0", "Ben": "1"}, clips)])
        with tempfile.TemporaryDirectory() as tmp:
            measured = measured_working_memory(model, inputs, speech_plan(frames + 10), frames, Path(tmp))
        phases = estimate(checkpoint.config, model.dtype, prompt_tokens=inputs["input_ids"].shape[1], frames=frames,
                          clip_samples=[int(clip_seconds * 24000)] if clip_seconds else [], device_type="cpu",
                          parameters=checkpoint.parameters)
        case = f"{frames} frames, clip {clip_seconds:.0f} s"
        for name, value, items in zip(("prompt", "end"), measured, phases):
            est = sum(i.bytes for i in items) - weights
            print(f"{case:<22} {name:<8} {value / 2**20:>13.2f} {est / 2**20:>13.2f} {est / value:>6.2f}")
        peak = weights + max(measured)
        est_peak = max(sum(i.bytes for i in p) for p in phases)
        print(f"{case:<22} {'peak':<8} {peak / 2**20:>13.2f} {est_peak / 2**20:>13.2f} {est_peak / peak:>6.2f}")


# -- 4: quirks -------------------------------------------------------------------------------------------------


def quirks(model, processor, frames: int) -> None:
    inputs = prompt(processor)
    length = inputs["input_ids"].shape[1]
    plan = [AUDIO] * frames + speech_plan(0)
    times, forwards = {}, {}
    calls = [0]
    hook = model.model.language_model.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    for token_cfg in (False, True):
        torch.manual_seed(0)
        calls[0] = 0
        start = time.process_time()
        generate_chunk(model, inputs, None, frames + 2, GenerationOptions(token_cfg=token_cfg),
                       logits_processors=[ForceTokens([plan], length)])
        times[token_cfg] = (time.process_time() - start) / frames
        forwards[token_cfg] = calls[0]
    hook.remove()
    lm_step = lm_forward_seconds(model, length + frames // 2)
    print(f"\n4a. token-level CFG quirk (guidance_scale != 1 also adds transformers' generic CFG processor): "
          f"{times[True] * 1000:.1f} ms/frame with it, {times[False] * 1000:.1f} ms/frame without "
          f"({times[True] / times[False]:.2f}x; LM forwards {forwards[True]} vs {forwards[False]} for {frames + 2} steps, "
          f"one forward ~{lm_step * 1000:.1f} ms here, where diffusion and codecs dominate) and a third KV "
          f"cache growing {kv_bytes_per_token(model.config.text_config, 4) / 1024:.1f} KiB/frame "
          "(28 KiB/frame = +1.1 GiB per 90 min on 1.5B bf16). Dropped by default.")
    plan2 = speech_plan(frames // 2, segments=2)
    audio = {}
    for reset in (True, False):
        torch.manual_seed(0)
        result = generate_chunk(model, inputs, None, len(plan2) + 2,
                                GenerationOptions(reset_codec_at_segment_end=reset),
                                logits_processors=[ForceTokens([plan2], length)])
        audio[reset] = result.audio[0].numpy()
    half = frames // 2 * 3200
    second_on, second_off = audio[True][half:], audio[False][half:]
    diff = np.abs(second_on - second_off)
    rms = float(np.sqrt(np.mean(second_on ** 2)))
    first = float(np.sqrt(np.mean(diff[:3200] ** 2))) / rms
    rest = float(np.sqrt(np.mean(diff[3 * 3200:] ** 2))) / rms if diff.size > 3 * 3200 else 0.0
    print(f"4b. codec caches not reset at a segment end: the next segment's first frame differs by "
          f"{first:.1%} of its RMS, frames 4+ by {rest:.1%} (first segment identical: "
          f"{np.array_equal(audio[True][:half], audio[False][:half])}). Reset by default, as the original code does.")


def lm_forward_seconds(model, context: int) -> float:
    from transformers import DynamicCache

    lm, hidden = model.model.language_model, model.config.text_config.hidden_size
    cache = DynamicCache(config=model.config.text_config)
    with torch.no_grad():
        lm(inputs_embeds=torch.randn(1, context, hidden, dtype=model.dtype), past_key_values=cache, use_cache=True)
        start = time.process_time()
        for _ in range(10):
            lm(inputs_embeds=torch.randn(1, 1, hidden, dtype=model.dtype), past_key_values=cache, use_cache=True)
    return (time.process_time() - start) / 10


# -- 5: throughput vs batch ----------------------------------------------------------------------------------


def throughput(model, processor, frames: int, sizes: list[int]) -> None:
    print(f"\n5. throughput vs batch size ({frames} frames per job, rows of different prompt lengths)")
    print(f"{'batch':>5} {'cpu s':>8} {'audio s':>8} {'audio s per cpu s':>18} {'vs batch 1':>11}")
    base = None
    for size in sizes:
        inputs = prompt(processor, rows=size)
        length = inputs["input_ids"].shape[1]
        plan = speech_plan(frames)
        carry, start = None, time.process_time()
        torch.manual_seed(0)
        produced = 0
        while carry is None or not carry.finished.all():
            result = generate_chunk(model, inputs, carry, 32, GenerationOptions(),
                                    logits_processors=[ForceTokens([plan] * size, length)])
            carry = result.carry
            produced += sum(a.numel() for a in result.audio if a is not None)
        wall = time.process_time() - start
        rate = produced / 24000 / wall
        base = base or rate
        print(f"{size:>5} {wall:>8.2f} {produced / 24000:>8.1f} {rate:>18.2f} {rate / base:>10.2f}x")


# -- 6: the 1.5B figure ----------------------------------------------------------------------------------------


def figure_15b() -> None:
    import random

    from transformers import VibeVoiceForConditionalGeneration

    config = configuration.published_config("VibeVoice-1.5B")
    with torch.device("meta"):
        parameters = sum(p.numel() for p in VibeVoiceForConditionalGeneration(config).parameters())
    random.seed(0)
    words = ("we talk about the future of stories and science and how people learn to listen to each other in a "
             "world that changes faster every year while the small things stay the same").split()
    lines, seconds, i = [], 0.0, 0
    while seconds < 89.5 * 60:
        text = " ".join(random.choice(words) for _ in range(random.randint(8, 40))).capitalize() + "."
        lines.append(f"[Speaker {i % 4 + 1}] {text}")
        seconds += len(text) / 15
        i += 1
    script = parse_script("\n".join(lines))
    # Qwen2.5's tokenizer gives ~1.3 tokens per English word (no tokenizer files are reachable here).
    count = lambda text: int(len(text.split()) * 1.3) + 3  # noqa: E731
    print("\n6. preflight: VibeVoice-1.5B, bf16, CUDA, 90 min, 4 speakers with 10 s clips, against 8 GiB")
    result = report(script, RenderSettings(), config, parameters, count, device=torch.device("cuda"),
                    dtype=torch.bfloat16, budget_bytes=8 * GIB, name="VibeVoice-1.5B", clip_seconds=10.0)
    print(result.summary())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (about a minute)")
    parser.add_argument("--checkpoint", type=Path, help="a real converted checkpoint instead of tiny ones")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny models on a shared CPU: thread start-up dominates otherwise
    work = Path(tempfile.mkdtemp(prefix="vibevoice-bench-"))
    frames, chunk = (256, 32) if args.quick else (1024, 64)
    directory = args.checkpoint or kv_heavy_checkpoint(work / "kv-heavy")
    checkpoint, model, processor = load(directory, args.device)
    text = model.config.text_config
    print(f"model: {checkpoint.name}, LM {text.num_hidden_layers} layers x {text.hidden_size}, "
          f"{checkpoint.parameters / 1e6:.1f} M parameters, {model.dtype}, {args.device}, torch threads 1")
    carried_vs_naive(model, processor, frames, chunk)
    estimator_check(checkpoint, model, processor, 120 if args.quick else 300)
    quirks(model, processor, 24 if args.quick else 60)
    if not args.checkpoint:
        _, small, small_processor = load(build_tiny_checkpoint(work / "tiny"), args.device)
        throughput(small, small_processor, 24 if args.quick else 60, [1, 2, 4] if args.quick else [1, 2, 4, 8])
    else:
        throughput(model, processor, 24 if args.quick else 60, [1, 2, 4])
    figure_15b()


if __name__ == "__main__":
    main()

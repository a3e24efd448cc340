"""Long-form generation as a chain of chunk calls with carried state, saved after every chunk.

One ``generate()`` call per chunk of N frames (``generate_chunk``): the first call encodes the prompt
(text and voice clips), every later call continues from the ``Carry`` of the previous one, so the
prompt is never encoded again and the audio is bit-identical to one uninterrupted call with the same
seed. Between calls the caller can stop, report progress, or save the state (``StateStore``), and a
fresh process loads it and continues as if nothing had happened.

Why chunks rather than one call: a 90-minute render takes hours on most hardware; a crash, a Ctrl-C or
a closed laptop must not cost more than the last chunk. And why not the naive way (re-run
``generate()`` on the growing context for each chunk): that re-encodes the whole context every time,
so late chunks cost as much as the whole prefix (``bench/bench_vibevoice.py`` prints both curves).
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...atomic import write_atomic
from ...errors import Cancelled, Conflict
from .state import Carry, ChunkHooks, cache_length, kv_delta, kv_join

DEFAULT_CHUNK_FRAMES = 32  # 4.3 s of audio per call: the unit of progress, stopping and saving


@dataclass(frozen=True)
class GenerationOptions:
    """The generation settings that shape the audio (all part of a saved state's identity)."""

    cfg_scale: float = 1.3
    diffusion_steps: int = 10
    token_cfg: bool = False  # upstream quirk, off by default (see state.py)
    reset_codec_at_segment_end: bool = True
    static_cache_length: int | None = None  # set for torch.compile: a StaticCache of this many positions
    compile: bool = False
    offload_kv: bool = False  # transformers' offloaded cache: KV in CPU RAM, ~2 layers on the device

    def identity(self) -> dict:
        return {"cfg_scale": self.cfg_scale, "diffusion_steps": self.diffusion_steps, "token_cfg": self.token_cfg,
                "reset_codec": self.reset_codec_at_segment_end, "static": self.static_cache_length}


@dataclass
class ChunkResult:
    carry: Carry
    audio: list[torch.Tensor | None]  # per batch row: this chunk's samples (1-D float32, CPU), None if none
    steps: int  # LM steps taken by this call


class _StopOnEvent:
    """A stopping criterion (public API): ends the call at the next step boundary once ``event`` is set,
    which leaves a consistent state to save (a chunk may be cut short; nothing else changes)."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def generate_chunk(model, inputs: dict[str, Any], carry: Carry | None, frames: int, options: GenerationOptions,
                   *, on_frame: Callable | None = None, logits_processors: list | None = None,
                   stop: threading.Event | None = None) -> ChunkResult:
    """Take up to ``frames`` LM steps: from the prompt in ``inputs`` when ``carry`` is None, else from ``carry``.

    ``on_frame(rows, audio)`` is called for every decoded frame (see ``ChunkHooks``).
    ``logits_processors`` are extra processors (tests use one to force the control tokens).
    ``stop`` ends the call early, at a step boundary.
    """
    from transformers import LogitsProcessorList, StoppingCriteriaList

    hooks = ChunkHooks(model, carry, on_frame=on_frame, token_cfg=options.token_cfg,
                       reset_codec_at_segment_end=options.reset_codec_at_segment_end)
    kwargs: dict[str, Any] = {
        "max_new_tokens": frames, "guidance_scale": options.cfg_scale, "num_diffusion_steps": options.diffusion_steps,
        "return_dict_in_generate": True, "do_sample": False,
        "logits_processor": LogitsProcessorList([*(logits_processors or []), hooks.processor]),
    }
    if stop is not None:
        kwargs["stopping_criteria"] = StoppingCriteriaList([_StopOnEvent(stop)])
    if carry is None:
        model_inputs = to_model(model, inputs)
        attention_mask = model_inputs["attention_mask"]
        if options.static_cache_length:
            kwargs.update(cache_implementation="offloaded_static" if options.offload_kv else "static",
                          max_cache_len=options.static_cache_length)
        elif options.offload_kv:
            kwargs["cache_implementation"] = "offloaded"
        prompt_length = model_inputs["input_ids"].shape[1]
    else:
        model_inputs = {"input_ids": carry.sequences, "attention_mask": carry.attention_mask,
                        "past_key_values": carry.cache}
        attention_mask = carry.attention_mask
        prompt_length = carry.prompt_length
    if options.compile:
        from transformers import CompileConfig

        kwargs["compile_config"] = CompileConfig(fullgraph=False)
    with torch.no_grad():
        with hooks:
            output = model.generate(**model_inputs, **kwargs)
        new_carry = hooks.collect(output, attention_mask, prompt_length)
    audio = [a[0].float().cpu() if a is not None else None for a in output.audio]
    return ChunkResult(new_carry, audio, new_carry.steps - (carry.steps if carry else 0))


def to_model(model, inputs: dict[str, Any]) -> dict[str, Any]:
    """Tensors onto the model's device; floating ones (the reference clips' ``input_values``, which the
    processor returns as float32) also in the model's dtype, as the original does with
    ``speech_tensors.to(self.dtype)``: a bf16 or fp16 codec refuses float32 input."""
    out = {}
    for key, value in inputs.items():
        if torch.is_tensor(value):
            value = value.to(model.device, dtype=model.dtype) if value.is_floating_point() else value.to(model.device)
        out[key] = value
    return out


class StateMismatch(Conflict):
    """A saved state belongs to a different script, voices, settings, model or device."""


def run(model, inputs: dict[str, Any], options: GenerationOptions, *, max_frames: int,
        chunk_frames: int = DEFAULT_CHUNK_FRAMES, seed: int = 0, store: "StateStore | None" = None,
        identity: dict | None = None, on_frame: Callable | None = None,
        progress: Callable[[int], None] | None = None, stop: threading.Event | None = None,
        logits_processors: list | None = None) -> list[np.ndarray]:
    """Generate until every row has finished or ``max_frames`` steps, chunk by chunk; returns audio per row.

    With a ``store``, the state is saved after every chunk and an existing state with the same
    ``identity`` is resumed (a different one raises ``StateMismatch``). ``stop`` (or Ctrl-C) ends the
    run at a step boundary, after saving: ``stop`` raises ``Cancelled``, Ctrl-C its ``KeyboardInterrupt``.
    """
    rows = inputs["input_ids"].shape[0]
    carry, audio, saved = None, [[] for _ in range(rows)], store.progress() if store else None
    if saved is not None:
        if saved["identity"] != identity:
            raise StateMismatch(f"the saved state in {store.dir} was made for another script, voices, settings, "
                                "model or device; delete it (or render with --force) to start over")
        if all(saved.get("finished", [])) or saved.get("steps", 0) >= max_frames:
            done_audio = store.load_audio()  # finished earlier: no need to bring the KV caches back
            if on_frame is not None:
                for row, piece in enumerate(done_audio):
                    if piece.numel():
                        on_frame(torch.tensor([row]), piece[None])
            return [concat_audio([piece]) for piece in done_audio]
        carry, done_audio, saved = store.load(model.config.text_config, model.device, options.static_cache_length,
                                              options.offload_kv)
        audio = [[a] for a in done_audio]
        if on_frame is not None:
            for row, piece in enumerate(done_audio):
                if piece.numel():
                    on_frame(torch.tensor([row]), piece[None])
    else:
        torch.manual_seed(seed)
    while True:
        steps = carry.steps if carry else 0
        if carry is not None and (bool(carry.finished.all()) or steps >= max_frames):
            break
        if stop is not None and stop.is_set():
            raise Cancelled("cancelled; resume to continue")
        result = generate_chunk(model, inputs, carry, min(chunk_frames, max_frames - steps), options,
                                on_frame=on_frame, logits_processors=logits_processors, stop=stop)
        carry = result.carry
        for row, piece in enumerate(result.audio):
            if piece is not None:
                audio[row].append(piece)
        if store is not None:
            store.save(identity, carry, result.audio)
        if progress is not None:
            progress(carry.steps)
    return [concat_audio(pieces) for pieces in audio]


# ------------------------------------------------------------------------------------------------------
# Saving the state after each chunk


class StateStore:
    """A directory holding one generation's progress; every write is atomic, ``progress.json`` last.

    Layout::

        progress.json          identity (what was being generated), finished chunk count, KV lengths
        chunk-00001.pt ...     per chunk: KV deltas (main and negative branch) and the chunk's audio
        carry.pt               the small carried state after the last finished chunk

    A chunk file is written before ``progress.json`` names it, and ``carry-NNNNN.pt`` carries the
    chunk number, so a crash between the writes leaves the previous chunk as the resume point.
    Every file is plain tensors and lists: ``torch.load(path, weights_only=True)`` reads it.
    """

    def __init__(self, directory: Path):
        self.dir = Path(directory)

    @property
    def progress_file(self) -> Path:
        return self.dir / "progress.json"

    def progress(self) -> dict | None:
        if not self.progress_file.exists():
            return None
        return json.loads(self.progress_file.read_text("utf-8"))

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def save(self, identity: dict, carry: Carry, audio: list[torch.Tensor | None], extra: dict | None = None) -> int:
        """Record one more finished chunk; returns its number."""
        progress = self.progress() or {"identity": identity, "chunks": 0, "kv": [], "negative_kv": []}
        number = progress["chunks"] + 1
        # One position of overlap: the negative branch rewrites its last position at a segment start.
        main_start = max(0, progress["kv"][-1] - 1) if progress["kv"] else 0
        neg_start = max(0, progress["negative_kv"][-1] - 1) if progress["negative_kv"] else 0
        chunk = {"main_start": main_start, "main": kv_delta(carry.cache, main_start),
                 "negative_start": neg_start, "negative": kv_delta(carry.negative_cache, neg_start),
                 "audio": [a if a is not None else torch.zeros(0) for a in audio]}
        _save(self.dir / f"chunk-{number:05d}.pt", chunk)
        _save(self.dir / f"carry-{number:05d}.pt", {k: _cpu(v) for k, v in carry.to_tensors().items()})
        progress.update(chunks=number, steps=carry.steps, finished=carry.finished.tolist(), **(extra or {}))
        progress["kv"].append(cache_length(carry.cache))
        progress["negative_kv"].append(cache_length(carry.negative_cache))
        text = json.dumps(progress, indent=1)
        write_atomic(self.progress_file, lambda f: f.write(text.encode("utf-8")))
        (self.dir / f"carry-{number - 1:05d}.pt").unlink(missing_ok=True)
        return number

    def load_audio(self) -> list[torch.Tensor]:
        """The audio of every finished chunk, per row (without the KV caches)."""
        progress, audio = self.progress(), None
        for number in range(1, (progress or {"chunks": 0})["chunks"] + 1):
            chunk = torch.load(self.dir / f"chunk-{number:05d}.pt", weights_only=True, mmap=True)
            audio = [[] for _ in chunk["audio"]] if audio is None else audio
            for row, piece in enumerate(chunk["audio"]):
                audio[row].append(piece.clone())
        return [torch.cat(pieces) if pieces else torch.zeros(0) for pieces in (audio or [])]

    def load(self, text_config, device: torch.device, static_length: int | None = None, offload: bool = False
             ) -> tuple[Carry, list[torch.Tensor], dict]:
        """The carried state and the audio so far (per row), as saved after the last finished chunk."""
        progress = self.progress()
        if progress is None:
            raise FileNotFoundError(f"no saved generation in {self.dir}")
        main, negative, audio = [], [], None
        for number in range(1, progress["chunks"] + 1):
            chunk = torch.load(self.dir / f"chunk-{number:05d}.pt", weights_only=True)
            main.append((chunk["main_start"], chunk["main"]))
            negative.append((chunk["negative_start"], chunk["negative"]))
            audio = [[] for _ in chunk["audio"]] if audio is None else audio
            for row, piece in enumerate(chunk["audio"]):
                audio[row].append(piece)
        small = torch.load(self.dir / f"carry-{progress['chunks']:05d}.pt", weights_only=True)
        carry = Carry.from_tensors(small, kv_join(main), kv_join(negative), text_config, device, static_length, offload)
        joined = [torch.cat(pieces) if pieces else torch.zeros(0) for pieces in (audio or [])]
        return carry, joined, progress


def _cpu(value):
    if torch.is_tensor(value):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    return value


def _save(path: Path, obj) -> None:
    write_atomic(path, lambda f: torch.save(obj, f))


def concat_audio(pieces: list[torch.Tensor | None]) -> np.ndarray:
    kept = [p for p in pieces if p is not None and p.numel()]
    return torch.cat(kept).numpy().astype(np.float32) if kept else np.zeros(0, np.float32)

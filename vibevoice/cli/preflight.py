"""``vibevoice preflight``: will a VibeVoice render fit, and how long will it take?

``vibevoice preflight SCRIPT --model-dir DIR`` prints the memory and time estimate for a render and
exits 1 when it will not fit (3 when the checkpoint directory is unusable), so scripts can check
before starting hours of work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from ..engines.vibevoice.configuration import ENV_MODEL_DIR, CheckpointError
from ..engines.vibevoice.preflight import GIB, preflight
from ..job.model import RenderSettings
from ..script import ScriptError, parse_script
from ..voices import VoiceError, assign_voices, load_templates, parse_assignment

out = Console()
err = Console(stderr=True)

ModelDirOption = Annotated[Optional[Path], typer.Option("--model-dir", envvar=ENV_MODEL_DIR, help=(
    "converted VibeVoice checkpoint directory, or the Qwen3-TTS one (--engine qwen3; default "
    "$VIBEVOICE_QWEN3_MODEL_DIR)"))]


def preflight_command(
    script: Annotated[Path, typer.Argument(help="dialogue script (UTF-8 text)")],
    model_dir: ModelDirOption = None,
    engine: Annotated[str, typer.Option(help="vibevoice, or qwen3 (Qwen3-TTS: weights and batched lines)")] = "vibevoice",
    batch_size: Annotated[int, typer.Option(min=0, max=64, help="Qwen3-TTS lines per batch (0: 4 on CPU, from "
                                            "memory on CUDA)")] = 0,
    voice: Annotated[Optional[list[str]], typer.Option("--voice", "-v", help="SPEAKER=VOICE_ID, repeatable")] = None,
    device: Annotated[Optional[str], typer.Option(help="cuda, cuda:1, mps or cpu (default: best available)")] = None,
    dtype: Annotated[Optional[str], typer.Option(help="bf16, fp16 or fp32 (default: by device)")] = None,
    budget_gib: Annotated[Optional[float], typer.Option(help="memory to fit in (default: what the device offers)")] = None,
    clip_seconds: Annotated[Optional[float], typer.Option(help="assume reference clips of this length")] = None,
    max_minutes: Annotated[float, typer.Option(min=0.1, max=90.0, help="stop generating after this much audio")] = 90.0,
    offload_kv: Annotated[bool, typer.Option(help="estimate with the KV cache offloaded to CPU RAM")] = False,
    scene_minutes: Annotated[Optional[float], typer.Option(help="estimate with scenes of at most this length")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Estimate peak memory and time of a VibeVoice render, and say whether it fits."""
    try:
        parsed = parse_script(script.read_bytes())
    except (OSError, ScriptError) as error:
        err.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(2)
    if engine == "qwen3":
        return _qwen3(parsed, model_dir, device, dtype, batch_size, budget_gib, json_output)
    if engine != "vibevoice" or model_dir is None:
        err.print("[red]error:[/red] " + (f"unknown --engine {engine!r}: use vibevoice or qwen3" if engine != "vibevoice"
                                          else f"pass --model-dir DIR or set ${ENV_MODEL_DIR}"), highlight=False)
        raise typer.Exit(2)
    voices = None
    if voice:
        try:
            voices = assign_voices(parsed.speakers, {}, parse_assignment(voice), load_templates())
        except (VoiceError, ValueError) as error:
            err.print(f"[red]error:[/red] {error}", highlight=False)
            raise typer.Exit(2)
    try:
        report = preflight(parsed, model_dir, RenderSettings(max_minutes=max_minutes), device=device, dtype=dtype,
                           voices=voices, clip_seconds=clip_seconds,
                           budget_bytes=int(budget_gib * GIB) if budget_gib else None,
                           kv_cache="offloaded" if offload_kv else "dynamic", scene_minutes=scene_minutes)
    except CheckpointError as error:
        err.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(3)
    except ValueError as error:
        err.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(2)
    out.print(report.model_dump_json(indent=1) if json_output else report.summary(), highlight=False)
    if not report.fits:
        raise typer.Exit(1)



def _qwen3(parsed, model_dir: Path | None, device: str | None, dtype: str | None, batch: int,
           budget_gib: float | None, json_output: bool) -> None:
    """The Qwen3-TTS estimate from the checkpoint's shapes (``engines.qwen3.preflight``); nothing is loaded."""
    import dataclasses

    import torch

    from ..engines.qwen3 import configuration, engine
    from ..engines.qwen3 import preflight as q3
    from ..errors import BadInput

    try:
        checkpoint = configuration.inspect_checkpoint(model_dir)
    except BadInput as error:
        err.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(3)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    precision = {"bf16": "torch.bfloat16", "fp16": "torch.float16", "fp32": "torch.float32"}.get(
        dtype or ("bf16" if dev.type == "cuda" else "fp32"), "torch.float32")
    if not batch:
        batch = q3.batch_for_memory(checkpoint, precision) if dev.type == "cuda" else engine.DEFAULT_BATCH["cpu"]
    est = q3.estimate(checkpoint, [(line.text, line.language) for line in parsed.lines], precision, batch,
                      engine.TYPICAL_RTF.get(dev.type, 1.3))
    budget = int(budget_gib * GIB) if budget_gib else (torch.cuda.mem_get_info(dev)[1] if dev.type == "cuda" else None)
    fits = budget is None or est.peak_bytes <= budget
    if json_output:
        out.print(json.dumps({**dataclasses.asdict(est), "budget_bytes": budget, "fits": fits}), highlight=False)
    else:
        verdict = "" if budget is None else (" — fits" if fits else f" — does not fit in {budget / GIB:.2f} GiB")
        out.print(f"Qwen3-TTS {checkpoint.size} {checkpoint.variant} on {dev.type}: {q3.describe(est)}{verdict}",
                  highlight=False)
    if not fits:
        raise typer.Exit(1)

"""``vibevoice render`` and ``vibevoice check``: a script to finished audio, through the job flow.

``render`` prepares the job in ``--job-dir`` and runs it here, in this process, through the same
``job.service.prepare``/``run`` the page and the API use (nothing to start, no server).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import audit, delivery, estimate, paths
from ..audio import clock
from ..content_filter import Mode as FilterMode
from ..content_filter import check as check_content
from ..errors import BadInput, Cancelled, RenderFailed, Unavailable
from ..job import service
from ..job.model import MANIFEST, RenderSettings
from ..job.runner import Job
from ..plan import release_now as release_director
from ..qa import gate
from ..voices import assign_voices, load_templates, parse_assignment
from .common import ScriptArg, err, fail, out, parse, print_flags, read_script


def render(
    ctx: typer.Context,
    script: ScriptArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="main output file (.mp3 or .wav)")] = Path("out.mp3"),
    voice: Annotated[Optional[list[str]], typer.Option("--voice", "-v", help="SPEAKER=VOICE_ID, repeatable")] = None,
    job_dir: Annotated[Optional[Path], typer.Option(help="where chunks and progress are kept")] = None,
    resume: Annotated[bool, typer.Option(help="continue the job in --job-dir; edited lines re-render")] = False,
    force: Annotated[bool, typer.Option(help="discard a previous job in --job-dir and start over")] = False,
    speed: Annotated[float, typer.Option(min=0.25, max=4.0, help="speaking-rate multiplier")] = 1.0,
    stems: Annotated[bool, typer.Option(help="also write one WAV per speaker")] = False,
    mp3_kbps: Annotated[int, typer.Option(min=32, max=320)] = 96,
    engine: Annotated[str, typer.Option(help="'voices' (each voice's engine: Kokoro, Piper), 'vibevoice' or 'qwen3'")] = "voices",
    model_dir: Annotated[Optional[Path], typer.Option(envvar="VIBEVOICE_MODEL_DIR", help=(
        "VibeVoice checkpoint directory (transformers format), or the Qwen3-TTS checkpoint directory "
        "(default for --engine qwen3: $VIBEVOICE_QWEN3_MODEL_DIR)"))] = None,
    seed: Annotated[int, typer.Option(help="random seed (VibeVoice, Qwen3-TTS)")] = 0,
    dtype: Annotated[str, typer.Option(help="VibeVoice precision: auto (bf16 on CUDA, else fp32), bf16, fp32, or "
                                       "fp16 (on request only: it can overflow)")] = "auto",
    cfg: Annotated[float, typer.Option(min=1.0, max=5.0, help="CFG scale (VibeVoice)")] = 1.3,
    steps: Annotated[int, typer.Option(min=1, max=100, help="diffusion steps (VibeVoice)")] = 10,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0, help="sampling temperature (Qwen3-TTS); 0 = greedy")] = 0.9,
    top_p: Annotated[float, typer.Option(min=0.01, max=1.0, help="nucleus sampling (Qwen3-TTS)")] = 1.0,
    top_k: Annotated[int, typer.Option(min=0, max=1000, help="top-k sampling (Qwen3-TTS); 0 = off")] = 50,
    repetition_penalty: Annotated[float, typer.Option(min=1.0, max=2.0, help="(Qwen3-TTS)")] = 1.05,
    batch_size: Annotated[int, typer.Option(min=0, max=64, help="lines generated together (Qwen3-TTS); "
                                            "0 = from the device's memory")] = 0,
    max_minutes: Annotated[float, typer.Option(min=0.1, max=90.0, help="stop after this much audio")] = 90.0,
    planner: Annotated[Optional[str], typer.Option(help="director: auto, rules, local, http or none "
                                                   "(default: $VIBEVOICE_PLANNER or auto)")] = None,
    replan: Annotated[bool, typer.Option("--replan", help="with --resume: the director plans every line again "
                                         "(default: unchanged lines keep their plan and audio)")] = False,
    qa: Annotated[bool, typer.Option("--qa", help="hear every take (Whisper, speaker encoder; needs the qa extra) "
                                     "and re-render the ones with wrong words or the wrong voice")] = False,
    retakes: Annotated[int, typer.Option(min=0, max=5, help="with --qa: re-renders allowed per failing chunk")] = 2,
    content_review: Annotated[bool, typer.Option("--content-review", help=(
        "also have the director's LLM endpoint ($VIBEVOICE_PLANNER_URL) review the script"))] = False,
    content_filter: Annotated[FilterMode, typer.Option(envvar="VIBEVOICE_CONTENT_FILTER", help=(
        "block: stop on severe lines, flag the rest; flag: report only; off"))] = "block",
) -> None:
    """Render SCRIPT to audio with subtitles (WAV, MP3, SRT, VTT), resumably."""
    text = read_script(script)
    job_dir = job_dir or _default_job_dir(script)
    kept = _previous_voices(job_dir, parse(text).speakers, resume, force)
    settings = _settings(engine, _model_dir(ctx, engine, model_dir), speed=speed, seed=seed, dtype=dtype,
                         cfg_scale=cfg, diffusion_steps=steps, temperature=temperature, top_p=top_p, top_k=top_k,
                         repetition_penalty=repetition_penalty, batch_size=batch_size, max_minutes=max_minutes,
                         content_filter=content_filter, content_review=content_review, qa=qa, qa_retakes=retakes)
    job = _prepare(text, voice, settings, planner, job_dir, kept, replan)
    _print_job(job)
    _render_job(job, f"vibevoice render {script} -o {output} --job-dir {job_dir} --resume", output, stems, mp3_kbps)
    if qa:
        _print_qa(job, job_dir)


def _model_dir(ctx: typer.Context, engine: str, given: Path | None) -> str | None:
    """The checkpoint: --model-dir; for Qwen3-TTS, its own default rather than VibeVoice's ``$VIBEVOICE_MODEL_DIR``."""
    given_here = getattr(ctx.get_parameter_source("model_dir"), "name", "") == "COMMANDLINE"  # typer's own enum
    if engine == "qwen3" and not given_here:
        from ..engines.qwen3.configuration import default_model_dir

        return default_model_dir()
    return str(given) if given else None


def _settings(engine: str, model_dir: str | None, **values) -> RenderSettings:
    """The job's settings from the options (the engine and precision checked first, in words)."""
    if engine not in ("voices", "vibevoice", "qwen3"):
        fail(f"unknown engine {engine!r}: use 'voices' (Kokoro/Piper per voice), 'vibevoice' or 'qwen3'")
    if values["dtype"] not in ("auto", "bf16", "fp16", "fp32"):
        fail(f"unknown --dtype {values['dtype']!r}: use auto, bf16, fp16 or fp32")
    return RenderSettings(engine=engine, model_dir=model_dir, **values)


def _prepare(text: bytes, voice: list[str] | None, settings: RenderSettings, planner: str | None, job_dir: Path,
             kept: dict[str, str], replan: bool = False) -> Job:
    try:
        request = service.JobRequest(script=text.decode("utf-8-sig"), voices=parse_assignment(voice or []),
                                     settings=settings, planner=planner or delivery.default_planner(), replan=replan)
        return service.prepare(job_dir, request, actor=audit.local_actor(), voice_ids=kept)
    except (BadInput, Unavailable) as error:
        fail(str(error))


def _render_job(job: Job, resume_hint: str, output: Path, stems: bool, mp3_kbps: int) -> None:
    try:
        outputs = _run_with_progress(job, output, stems, mp3_kbps)
    except KeyboardInterrupt:
        err.print(f"Stopped. Nothing rendered is lost; continue with:\n  {resume_hint}")
        raise typer.Exit(130)
    except (RenderFailed, Cancelled) as error:
        err.print(f"[red]error:[/red] {escape(str(error))}\n  continue with: {resume_hint}", highlight=False)
        raise typer.Exit(1)
    for kind, path in outputs.items():
        out.print(f"{kind:>4}: {path}", highlight=False)


def check(script: ScriptArg) -> None:
    """Validate SCRIPT; print its speakers, lines, estimated duration and render time."""
    parsed = parse(read_script(script))
    voices = assign_voices(parsed.speakers, parsed.speaker_languages(), {}, load_templates())
    seconds = parsed.estimated_seconds()
    table = Table("speaker", "lines", "default voice")
    for speaker in parsed.speakers:
        count = sum(line.speaker == speaker for line in parsed.lines)
        table.add_row(speaker, str(count), voices[speaker].id)
    out.print(table)
    # A CLI render is always a fresh process: cold (engines loaded), director as configured.
    took = estimate.render_seconds(parsed, voices, estimate.planner_name(), warm=False)
    out.print(f"{len(parsed.lines)} lines, about {clock(seconds)} of audio; "
              f"rendering and export take about {clock(took)} on a 2-core CPU.")
    findings = check_content(parsed)
    print_flags(findings)
    if any(f.action == "block" for f in findings):
        raise typer.Exit(2)


def _previous_voices(job_dir: Path, speakers: list[str], resume: bool, force: bool) -> dict[str, str]:
    """The voices of the job already in ``job_dir`` (kept on --resume); refuse to overwrite it silently."""
    if not (job_dir / MANIFEST).exists():
        return {}
    previous = Job.open(job_dir).manifest
    if not resume and not force:
        done = sum(c.status == "done" for c in previous.chunks)
        fail(f"{job_dir} already holds a job ({done} of {len(previous.chunks)} chunks done). Add --resume to "
             "continue it (edited lines are re-rendered, the rest is reused) or --force to start over.")
    if force:
        shutil.rmtree(job_dir / "chunks", ignore_errors=True)
        shutil.rmtree(job_dir / "state", ignore_errors=True)
        (job_dir / MANIFEST).unlink()
        return {}
    return {s: v.id for s, v in previous.voices.items() if s in speakers}


def _print_job(job: Job) -> None:
    assignment = ", ".join(f"{s} → {v.id}" for s, v in job.manifest.voices.items())
    out.print(f"Voices: {assignment}", highlight=False)
    print_flags(job.manifest.content_flags)


def _print_notes(job: Job) -> None:
    notes = job.manifest.notes
    for note in notes[:5]:
        out.print(f"note: {note}", highlight=False)
    if len(notes) > 5:
        out.print(f"note: …and {len(notes) - 5} more in {job.dir / MANIFEST}", highlight=False)
    reused = len(job.manifest.chunks) - len(job.pending)
    if reused:
        out.print(f"Reusing {reused} finished chunk(s); {len(job.pending)} to render.")


def _run_with_progress(job: Job, output: Path, stems: bool, mp3_kbps: int) -> dict[str, str]:
    """Direct (a local LLM takes a moment per line), then render, with progress bars; then export."""
    if not job.manifest.chunked:
        with Progress(TextColumn("directing"), BarColumn(), TextColumn("{task.completed}/{task.total} lines"),
                      console=err, transient=True) as bar:
            task = bar.add_task("plan", total=len(job.script.lines))
            job.direct(progress=lambda done, total: bar.update(task, completed=done))
        release_director()  # this process plans no more: its memory goes back before the render
        plan = job.manifest.plan
        if plan is not None:
            fell_back = f"; {len(plan.fallbacks)} line(s) fell back to rules" if plan.fallbacks else ""
            out.print(f"Delivery planned by {plan.planner}{fell_back}.", highlight=False)
    _print_notes(job)
    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"), TextColumn("{task.fields[line]}")]
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task("rendering", total=len(job.manifest.chunks), line="", eta="-:--")

        def update(p) -> None:
            line = f"{p.speaker}: {p.text[:40]}" if p.text else "done"
            bar.update(task, completed=p.done, line=line, eta=clock(p.eta) if p.eta is not None else "-:--")

        return service.run(job, output, progress=update, stems=stems, mp3_kbps=mp3_kbps)


def _print_qa(job: Job, job_dir: Path) -> None:
    retaken = gate.summary(job.manifest.chunks)
    failing = sum(not t.passed for c in job.manifest.chunks for t in c.takes if t.kept)
    out.print(f"QA: {len(retaken)} chunk(s) re-rendered, {failing} still failing "
              f"(details: vibevoice qa {job_dir})", highlight=False)
    for line in retaken:
        out.print(f"  {escape(line)}", highlight=False)


def _default_job_dir(script: Path) -> Path:
    """One job per script file, so re-running the same command after a crash finds its job."""
    if str(script) == "-":
        return paths.jobs_dir() / "stdin"
    tag = hashlib.sha256(str(script.resolve()).encode()).hexdigest()[:8]
    return paths.jobs_dir() / f"{script.stem}-{tag}"

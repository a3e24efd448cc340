"""``vibevoice`` on the command line: a thin shell over script → voices → render → export.

Errors go to stderr with the script line they concern and a non-zero exit code (2 for bad input,
1 for a failed render, 130 for Ctrl-C); a stopped render always says how to resume it.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import audit, delivery, paths, retake
from .cloning import clone_voice
from .content_filter import Mode as FilterMode
from .content_filter import check as check_content
from .content_filter import enforce
from .engines import get_engine
from .export import export_job
from .plan.cli import plan_command
from .qa.cli import qa_command
from .render import Job, RenderError, RenderSettings, clock
from .script import ScriptError, parse_script
from .voices import CONSENT_STATEMENT, VoiceError, assign_voices, load_templates, parse_assignment
from .watermark import detect_command

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])
out = Console()
err = Console(stderr=True, soft_wrap=True)  # never break a message (or a path) mid-line

ScriptArg = Annotated[Path, typer.Argument(help="dialogue script (UTF-8 text); '-' reads standard input")]


@app.command()
def render(
    script: ScriptArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="main output file (.mp3 or .wav)")] = Path("out.mp3"),
    voice: Annotated[Optional[list[str]], typer.Option("--voice", "-v", help="SPEAKER=VOICE_ID, repeatable")] = None,
    job_dir: Annotated[Optional[Path], typer.Option(help="where chunks and progress are kept")] = None,
    resume: Annotated[bool, typer.Option(help="continue the job in --job-dir; edited lines re-render")] = False,
    force: Annotated[bool, typer.Option(help="discard a previous job in --job-dir and start over")] = False,
    speed: Annotated[float, typer.Option(min=0.5, max=2.0, help="speaking-rate multiplier")] = 1.0,
    stems: Annotated[bool, typer.Option(help="also write one WAV per speaker")] = False,
    mp3_kbps: Annotated[int, typer.Option(min=32, max=320)] = 96,
    engine: Annotated[str, typer.Option(help="'voices' (each voice's engine: Kokoro, Piper) or 'vibevoice'")] = "voices",
    model_dir: Annotated[Optional[Path], typer.Option(envvar="VIBEVOICE_MODEL_DIR",
                                                      help="VibeVoice checkpoint directory (transformers format)")] = None,
    seed: Annotated[int, typer.Option(help="random seed (VibeVoice)")] = 0,
    cfg: Annotated[float, typer.Option(min=1.0, max=5.0, help="CFG scale (VibeVoice)")] = 1.3,
    steps: Annotated[int, typer.Option(min=1, max=100, help="diffusion steps (VibeVoice)")] = 10,
    max_minutes: Annotated[float, typer.Option(min=0.1, max=90.0, help="stop after this much audio")] = 90.0,
    planner: Annotated[Optional[str], typer.Option(help="director: auto, rules, local, http or none "
                                                   "(default: $VIBEVOICE_PLANNER or auto)")] = None,
    qa: Annotated[bool, typer.Option("--qa", help="hear every take (Whisper, speaker encoder; needs the qa extra) "
                                     "and re-render the ones with wrong words or the wrong voice")] = False,
    retakes: Annotated[int, typer.Option(min=0, max=5, help="with --qa: re-renders allowed per failing chunk")] = 2,
    content_review: Annotated[bool, typer.Option("--content-review", help=(
        "also have the director's LLM endpoint ($VIBEVOICE_PLANNER_URL) review the script"))] = False,
    content_filter: Annotated[FilterMode, typer.Option(envvar="VIBEVOICE_CONTENT_FILTER", help=(
        "block: stop on severe lines, flag the rest; flag: report only; off"))] = "block",
) -> None:
    """Render SCRIPT to audio with subtitles (WAV, MP3, SRT, VTT), resumably."""
    text = _read_script(script)
    parsed = _parse(text)
    job_dir = job_dir or _default_job_dir(script)
    previous = Job.open(job_dir) if (job_dir / "job.json").exists() else None
    if previous and not resume and not force:
        done = sum(c.status == "done" for c in previous.manifest.chunks)
        _fail(f"{job_dir} already holds a job ({done} of {len(previous.manifest.chunks)} chunks done). "
              "Add --resume to continue it (edited lines are re-rendered, the rest is reused) or --force to start over.")
    if force and previous:
        shutil.rmtree(job_dir / "chunks", ignore_errors=True)
        (job_dir / "job.json").unlink()
        previous = None
    try:
        requested = parse_assignment(voice or [])
        kept = {s: v.id for s, v in previous.manifest.voices.items() if s in parsed.speakers} if previous else {}
        voices = assign_voices(parsed.speakers, parsed.speaker_languages(), {**kept, **requested}, load_templates())
        if engine not in ("voices", "vibevoice"):
            raise ValueError(f"unknown engine {engine!r}: use 'voices' (Kokoro/Piper per voice) or 'vibevoice'")
        settings = RenderSettings(speed=speed, engine=engine, model_dir=str(model_dir) if model_dir else None,
                                  seed=seed, cfg_scale=cfg, diffusion_steps=steps, max_minutes=max_minutes,
                                  content_filter=content_filter, content_review=content_review,
                                  qa=qa, qa_retakes=retakes)
        enforce(parsed, content_filter)  # before the director reads the script
        plan = _direct(parsed, planner or delivery.default_planner())
        job = Job.create(job_dir, text, voices, settings, plan)
    except (VoiceError, ValueError) as error:
        _fail(str(error))
    _print_assignment(job)
    _print_flags(job.manifest.content_flags)
    for note in job.manifest.notes[:5]:
        out.print(f"note: {note}", highlight=False)
    if len(job.manifest.notes) > 5:
        out.print(f"note: …and {len(job.manifest.notes) - 5} more in {job_dir / 'job.json'}", highlight=False)
    reused = len(job.manifest.chunks) - len(job.pending)
    if reused:
        out.print(f"Reusing {reused} finished chunk(s); {len(job.pending)} to render.")
    try:
        _render_with_progress(job)
        outputs = export_job(job, output, stems=stems, mp3_kbps=mp3_kbps)
    except KeyboardInterrupt:
        err.print(f"Stopped. Nothing rendered is lost; continue with:\n  vibevoice render {script} -o {output} "
                  f"--job-dir {job_dir} --resume")
        raise typer.Exit(130)
    except RenderError as error:
        err.print(f"[red]error:[/red] {error}\n  continue with: vibevoice render {script} -o {output} "
                  f"--job-dir {job_dir} --resume", highlight=False)
        raise typer.Exit(1)
    for kind, path in outputs.items():
        out.print(f"{kind:>4}: {path}", highlight=False)
    if qa:
        retaken = retake.summary(job.manifest.chunks)
        failing = sum(not t.passed for c in job.manifest.chunks for t in c.takes if t.kept)
        out.print(f"QA: {len(retaken)} chunk(s) re-rendered, {failing} still failing "
                  f"(details: vibevoice qa {job_dir})", highlight=False)
        for line in retaken:
            out.print(f"  {escape(line)}", highlight=False)


@app.command()
def check(script: ScriptArg) -> None:
    """Validate SCRIPT; print its speakers, lines, estimated duration and render time."""
    parsed = _parse(_read_script(script))
    voices = assign_voices(parsed.speakers, parsed.speaker_languages(), {}, load_templates())
    seconds = parsed.estimated_seconds()
    table = Table("speaker", "lines", "default voice")
    for speaker in parsed.speakers:
        count = sum(line.speaker == speaker for line in parsed.lines)
        table.add_row(speaker, str(count), voices[speaker].id)
    out.print(table)
    rtf = max(get_engine(v.engine).capabilities.typical_rtf for v in voices.values())
    out.print(f"{len(parsed.lines)} lines, about {clock(seconds)} of audio; "
              f"rendering takes about {clock(seconds * rtf)} on a 2-core CPU.")
    findings = check_content(parsed)
    _print_flags(findings)
    if any(f.action == "block" for f in findings):
        raise typer.Exit(2)


def _print_flags(findings) -> None:
    """Content-filter findings, one per line, as warnings (blocked ones never get this far in render)."""
    for finding in findings:
        err.print("[yellow]content filter:[/yellow]", escape(str(finding)), highlight=False)


@app.command("voices")
def list_voices() -> None:
    """List voice templates (presets and your saved ones)."""
    table = Table("id", "name", "engine", "languages", "description")
    for t in load_templates().values():
        table.add_row(t.id, t.name, t.engine, ",".join(t.languages), t.description)
    out.print(table)


@app.command("clone")
def clone(
    name: Annotated[str, typer.Argument(help="the speaker's name (becomes part of the voice id)")],
    clip: Annotated[Path, typer.Argument(help="reference recording: WAV, FLAC, MP3 or OGG, 3 s or more of speech")],
    consent: Annotated[bool, typer.Option("--consent", help=f"required: {CONSENT_STATEMENT}")] = False,
) -> None:
    """Save CLIP as a cloning voice for the VibeVoice engine (needs --consent)."""
    try:
        template = clone_voice(name, clip.read_bytes(), clip.suffix, consent, audit.local_actor())
    except OSError as error:
        _fail(f"cannot read {clip}: {error.strerror}")
    except ValueError as error:
        _fail(str(error))
    out.print(f"Saved voice [bold]{template.id}[/bold] (consent recorded {template.spec.consent.confirmed_at}); "
              f"use it with --engine vibevoice --voice '{name}={template.id}'")


@app.command("audit")
def audit_log(
    limit: Annotated[int, typer.Option(min=1, help="show the newest N events")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Show the local audit log (jobs created, blocked, exported, deleted; voices cloned)."""
    events = audit.read(limit)
    if as_json:
        for event in events:
            out.print_json(data=event)
        return
    table = Table("time", "event", "actor", "job", "details")
    for e in events:
        details = ", ".join(f"{k}={e[k]}" for k in ("voice", "lines", "content_filter", "flagged", "seconds") if k in e)
        table.add_row(e["time"][:19], e["event"], e.get("actor", ""), e.get("job_id") or "", details)
    out.print(table)
    out.print(f"{audit.path()} — kept on this machine only", highlight=False)


def _read_script(path: Path) -> bytes:
    try:
        return sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as error:
        _fail(f"cannot read {path}: {error.strerror}")


def _parse(text):
    try:
        return parse_script(text)
    except ScriptError as error:
        err.print(f"[red]The script has {len(error.problems)} problem(s):[/red]")
        err.print(str(error), highlight=False, markup=False)
        raise typer.Exit(2)


def _render_with_progress(job: Job) -> None:
    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"), TextColumn("{task.fields[line]}")]
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task("rendering", total=len(job.manifest.chunks), line="", eta="-:--")

        def update(p) -> None:
            line = f"{p.speaker}: {p.text[:40]}" if p.text else "done"
            bar.update(task, completed=p.done, line=line, eta=clock(p.eta) if p.eta is not None else "-:--")

        job.render(progress=update)


def _direct(parsed, planner: str):
    """Plan delivery (with a progress bar: a local LLM takes a moment per line) and say what happened."""
    if planner == delivery.NO_PLANNER:
        return None
    with Progress(TextColumn("directing"), BarColumn(), TextColumn("{task.completed}/{task.total} lines"),
                  console=err, transient=True) as bar:
        task = bar.add_task("plan", total=len(parsed.lines))
        plan = delivery.direct(parsed, planner, progress=lambda done, total: bar.update(task, completed=done))
    fell_back = f"; {len(plan.fallbacks)} line(s) fell back to rules" if plan.fallbacks else ""
    out.print(f"Delivery planned by {plan.planner}{fell_back}.", highlight=False)
    return plan


def _print_assignment(job: Job) -> None:
    assignment = ", ".join(f"{s} → {v.id}" for s, v in job.manifest.voices.items())
    out.print(f"Voices: {assignment}", highlight=False)


def _default_job_dir(script: Path) -> Path:
    """One job per script file, so re-running the same command after a crash finds its job."""
    if str(script) == "-":
        return paths.jobs_dir() / "stdin"
    tag = hashlib.sha256(str(script.resolve()).encode()).hexdigest()[:8]
    return paths.jobs_dir() / f"{script.stem}-{tag}"


def _fail(message: str) -> None:
    err.print("[red]error:[/red]", escape(message), highlight=False)
    raise typer.Exit(2)


app.command("plan")(plan_command)
app.command("qa")(qa_command)
app.command("detect")(detect_command)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False)
def preflight(ctx: typer.Context) -> None:
    """Estimate peak memory and time of a VibeVoice render, and say whether it fits (--help for options)."""
    # Imported on use: the VibeVoice stack loads torch and transformers (seconds), which the other
    # commands never need.
    from .engines.vibevoice.cli import preflight_command

    command = typer.Typer(add_completion=False)
    command.command()(preflight_command)
    command(ctx.args, prog_name="vibevoice preflight")


if __name__ == "__main__":
    app()

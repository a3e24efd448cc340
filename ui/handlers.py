"""What the page's buttons do: plain functions over the library, no Gradio layout here.

Every error a user can cause becomes a ``gr.Error`` with the library's own message (line numbers for
script problems), so the page never shows a traceback.
"""

from __future__ import annotations

import html
import json
import os
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder
from pydantic import ValidationError

from ui import transcript
from ui.status import status_html
from vibevoice import paths
from vibevoice.audio import SAMPLE_RATE, clock
from vibevoice.cloning import clone_voice
from vibevoice.content_filter import check as check_content
from vibevoice.content_filter import default_mode as default_filter_mode
from vibevoice.engines import get_engine
from vibevoice.errors import BadInput, VibeVoiceError, field_problems
from vibevoice.estimate import planner_name
from vibevoice.estimate import render_seconds as estimate_seconds
from vibevoice.job.model import ACTIVE, RenderSettings
from vibevoice.job.service import JobRequest, JobService
from vibevoice.script import ScriptError, parse_script
from vibevoice.voices import assign_voices, design_voice, load_templates

MAX_SPEAKERS = 4
EXAMPLES = {p.stem: p for p in sorted((paths.PRESETS_DIR / "scripts").glob("*.txt"))}
ENGINES = {"Embedded (Kokoro, offline)": "voices", "VibeVoice (local checkpoint)": "vibevoice",
           "Qwen3-TTS (local checkpoint)": "qwen3"}
CLONING_ENGINES = ("vibevoice", "qwen3")  # engines that speak a consented reference clip (Qwen3-TTS: Base)
FILTER_MODES = {"Block severe lines, flag the rest": "block", "Flag only": "flag", "Off": "off"}
NOTICES = {"Automatic (at the start when a voice is cloned)": "auto", "At the start": "start", "At the end": "end",
           "Off": "off"}
POLL_SECONDS = 0.5


@dataclass
class SpeakerRow:
    """What one speaker row of the page holds (the page sends these four values per row, in this order)."""

    speaker: str
    voice: str | None
    hint: str
    clip: str | None

    @classmethod
    def many(cls, values) -> list["SpeakerRow"]:
        width = len(fields(cls))
        return [cls(*values[i:i + width]) for i in range(0, len(values) - width + 1, width)]


@dataclass
class JobForm:
    """The Generate button's inputs by name (the ``/start_job`` endpoint takes them in this order)."""

    text: str
    engine_label: str
    model_dir: str
    speed: float
    seed: float
    cfg: float
    steps: float
    turn_gap: float
    consent: bool
    planner: str
    content: str
    notice: str
    qa: bool
    table: Any
    rows: list[SpeakerRow]
    # Appended after the speaker rows (and optional), so ``/start_job`` callers written before them still fit.
    temperature: float = 0.9
    top_p: float = 1.0
    top_k: float = 50
    repetition_penalty: float = 1.05
    planned: Any = None  # the director's plan the transcript was filled from (what the user did not change)

    @classmethod
    def from_values(cls, values) -> "JobForm":
        names = [f.name for f in fields(cls)]
        named = names.index("rows")
        width = len(fields(SpeakerRow)) * MAX_SPEAKERS
        tail = dict(zip(names[named + 1:], values[named + width:]))
        return cls(*values[:named], rows=SpeakerRow.many(values[named:named + width]),
                   **{k: v for k, v in tail.items() if v is not None})

    def settings(self) -> RenderSettings:
        return RenderSettings(speed=self.speed, seed=int(self.seed or 0), turn_gap=self.turn_gap, cfg_scale=self.cfg,
                              diffusion_steps=int(self.steps), engine=ENGINES.get(self.engine_label, "voices"),
                              model_dir=(self.model_dir or "").strip() or None,
                              content_filter=FILTER_MODES[self.content], disclosure=NOTICES[self.notice],
                              qa=bool(self.qa), temperature=float(self.temperature), top_p=float(self.top_p),
                              top_k=int(self.top_k), repetition_penalty=float(self.repetition_penalty))


def load_example(name: str | None) -> str:
    return EXAMPLES[name].read_text("utf-8") if name in EXAMPLES else gr.skip()


def validate(text: str, engine_label: str, model_dir: str, remembered: dict | None = None,
             content: str = next(iter(FILTER_MODES))):
    """Parse as the user types: problems with line numbers, the estimate, and one voice row per speaker.

    ``remembered`` is the browser's memory of earlier choices, keyed by the script's set of speakers,
    so re-opening the same show brings back the voices picked for it.
    """
    hidden = [gr.update(visible=False), gr.update(), gr.update()] * MAX_SPEAKERS
    if not text.strip():
        return "", "", *hidden
    try:
        script = parse_script(text)
    except ScriptError as error:
        items = "\n".join(f"- **line {p.line}, column {p.column}:** {html.escape(p.message)}"
                          + (f" _(expected: {html.escape(p.expected)})_" if p.expected else "")
                          for p in error.problems)
        more = f"\n- … and {error.total - len(error.problems)} more" if error.total > len(error.problems) else ""
        return f"⚠️ The script has {error.total} problem(s):\n{items}{more}", "", *hidden
    engine = ENGINES.get(engine_label, "voices")
    templates = engine_templates(engine)
    kept = {s: v for s, v in ((remembered or {}).get(cast_key(script.speakers)) or {}).items()
            if s in script.speakers and v in templates}
    voices = assign_voices(script.speakers, script.speaker_languages(), kept, templates,
                           {"qwen3"} if engine == "qwen3" else None)
    choices = voice_choices(engine)
    updates = []
    for n in range(MAX_SPEAKERS):
        if n < len(script.speakers):
            speaker = script.speakers[n]
            updates += [gr.update(visible=True), gr.update(value=speaker),
                        gr.update(choices=choices, value=voices[speaker].id)]
        else:
            updates += [gr.update(visible=False), gr.update(value=""), gr.update(choices=choices)]
    return content_report(script, FILTER_MODES.get(content, "block")), estimate(script, voices, engine, model_dir), \
        *updates


def engine_templates(engine: str) -> dict:
    """The voices a job on ``engine`` can speak: Qwen3-TTS's own (named, designed) and cloned ones under
    Qwen3-TTS; every other voice under the other engines (Qwen3-TTS voices need its checkpoint)."""
    templates = load_templates()
    if engine == "qwen3":
        return {k: t for k, t in templates.items() if t.engine == "qwen3" or t.spec.kind == "clone"}
    return {k: t for k, t in templates.items() if t.engine != "qwen3"}


def voice_choices(engine: str) -> list[tuple[str, str]]:
    return [(t.name, t.id) for t in engine_templates(engine).values()]


def create_designed_voice(name: str, description: str):
    """A designed voice (Qwen3-TTS VoiceDesign) from the page: saved as a template, added to every voice list,
    and the engine switched to Qwen3-TTS (the only one that speaks it)."""
    try:
        template = design_voice((name or "").strip(), (description or "").strip())
    except (VibeVoiceError, ValueError) as error:  # ValueError: the template's own validation
        raise gr.Error(html.escape(str(error)).replace("\n", "<br>"), title="Cannot design the voice") from None
    choices = voice_choices("qwen3")
    note = (f"Saved designed voice **{html.escape(template.name)}** (`{template.id}`); pick it for a speaker and "
            "render with a Qwen3-TTS VoiceDesign checkpoint.")
    qwen3 = next(label for label, engine in ENGINES.items() if engine == "qwen3")  # designed voices are its own
    return note, qwen3, *[gr.update(choices=choices)] * MAX_SPEAKERS


def cloning_visible(count: int):
    """The handler that shows the consent box and clip uploads only under a cloning engine."""
    return lambda label: [gr.update(visible=ENGINES[label] in CLONING_ENGINES)] * count


def filter_label() -> str:
    """The page's initial content-filter choice: the server's default mode."""
    mode = default_filter_mode()
    return next(label for label, value in FILTER_MODES.items() if value == mode)


def content_report(script, mode: str) -> str:
    """The content filter's findings as the page shows them under the script (empty when clean)."""
    findings = check_content(script, mode)
    if not findings:
        return ""
    blocked = any(f.action == "block" for f in findings)
    head = ("⛔ The content filter blocks this script (severe lines below); edit them or change the filter "
            "mode under *Responsible use*." if blocked else f"⚑ The content filter flagged {len(findings)} phrase(s); "
            "the job will render and record them.")
    items = "\n".join(f"- **line {f.line}:** {'blocked' if f.action == 'block' else 'flagged'} as "
                      f"{f.category} — “{html.escape(f.matched)}”" for f in findings)
    return f"{head}\n{items}"


def cast_key(speakers: list[str]) -> str:
    return "|".join(sorted(s.casefold() for s in speakers))


def remember(remembered: dict | None, text: str, *rows) -> dict:
    """Store this script's speaker → voice choice in the browser (``rows``: ``SpeakerRow`` values)."""
    choice = {row.speaker: row.voice for row in SpeakerRow.many(rows) if row.speaker and row.voice}
    if not choice:
        return remembered or {}
    return {**(remembered or {}), cast_key(list(choice)): choice}


def active_job(service: JobService) -> str:
    """The newest job still rendering, so a reloaded page reattaches to it."""
    return next((j.id for j in service.list() if j.status in ACTIVE), "")


def estimate(script, voices, engine: str, model_dir: str) -> str:
    seconds = script.estimated_seconds()
    head = f"{len(script.speakers)} speaker(s), {len(script.lines)} lines, about **{clock(seconds)}** of audio"
    if engine == "qwen3":
        return f"{head}. {qwen3_estimate(script, model_dir)}"
    if engine != "vibevoice":
        took = estimate_seconds(script, voices, planner_name())  # warm or cold: as this server is now
        return f"{head}; rendering and export take about {clock(took)} here."
    if not model_dir.strip():
        return f"{head}. Enter the VibeVoice model directory to see the memory and time estimate."
    from vibevoice.engines.vibevoice.preflight import preflight  # torch: only once someone picks VibeVoice

    try:
        paths.check_model_dir(model_dir.strip())
        report = preflight(script, model_dir.strip(), RenderSettings(engine="vibevoice"))
    except VibeVoiceError as error:  # a checkpoint problem is shown, not raised
        return f"{head}. ⚠️ {html.escape(str(error))}"
    return f"{head}. Preflight: {html.escape(report.summary)}"


def qwen3_estimate(script, model_dir: str) -> str:
    """The Qwen3-TTS preflight (memory and time from the checkpoint's shapes; nothing is loaded)."""
    from vibevoice.engines.qwen3 import configuration, preflight

    folder = (model_dir or "").strip() or configuration.default_model_dir()
    if not folder:
        return "Enter the Qwen3-TTS checkpoint directory to see the memory and time estimate."
    try:
        paths.check_model_dir(folder)
        checkpoint = configuration.inspect_checkpoint(folder)
        est = preflight.estimate(checkpoint, [(line.text, line.language) for line in script.lines], "torch.float32",
                                 4, 1.3)
    except VibeVoiceError as error:  # a checkpoint problem is shown, not raised
        return f"⚠️ {html.escape(str(error))}"
    return f"Preflight ({checkpoint.size} {checkpoint.variant}, CPU): {html.escape(preflight.describe(est))}"


def preview_voice(voice_id: str | None):
    if not voice_id:
        raise gr.Error("Pick a voice first.")
    template = load_templates()[voice_id]
    if template.engine == "vibevoice":
        raise gr.Error("Cloned voices are heard in a VibeVoice render; there is no quick preview.")
    if template.engine == "qwen3":
        raise gr.Error("Qwen3-TTS voices are heard in a Qwen3-TTS render (it needs the checkpoint); there is no "
                       "quick preview.")
    text = "你好！很高兴认识你，我们开始吧。" if template.languages == ["zh"] else "Hi! This is how I sound. Shall we begin?"
    return SAMPLE_RATE, get_engine(template.engine).speak(text, template)


def clone_template(speaker: str, clip_path: str | None, consent: bool, actor: str) -> str | None:
    """Save an uploaded reference clip as the speaker's cloning template (consent required); return its id.

    Only a file Gradio received as an upload is read: any other path a client sends (a server file,
    another job's audio) is refused with the same words whether it exists or not.
    """
    if not clip_path:
        return None
    path = Path(clip_path).resolve()
    if not path.is_relative_to(Path(get_upload_folder()).resolve()) or not path.is_file():
        raise gr.Error(f"the reference clip for {speaker!r} was not uploaded through this page; upload it again")
    try:
        template = clone_voice(speaker, path.read_bytes(), path.suffix, consent, actor)
    except BadInput as error:  # no consent, or a clip that is too short, silent or unreadable
        raise gr.Error(str(error)) from None
    return template.id


def page_actor(request: gr.Request | None) -> str:
    """Who is using the page, for the local audit log (the page has no accounts: the client address)."""
    host = getattr(getattr(request, "client", None), "host", None)
    return f"page:{host or 'unknown'}"


def direct_plan(text: str, planner: str, *rows):
    """The director's plan as the transcript (``rows``: ``SpeakerRow`` values, for the emotion hints)."""
    hints = {row.speaker: row.hint for row in SpeakerRow.many(rows) if row.speaker and row.hint}
    return transcript.direct(text, planner, hints)


def start_job(service: JobService, request: gr.Request, form: JobForm):
    """Queue the job. ``request`` is filled in by Gradio (not a page input): the client's address for the audit log."""
    voices, hints, actor = {}, {}, page_actor(request)
    for row in form.rows:
        if row.speaker:
            voices[row.speaker] = clone_template(row.speaker, row.clip, form.consent, actor) or row.voice
            hints[row.speaker] = (row.hint or "").strip()
    try:
        script = parse_script(form.text)
        plan = transcript.plan_from(form.table, script, form.planned) if form.table is not None else None
        info = service.submit(JobRequest(script=form.text, voices={s: v for s, v in voices.items() if v},
                                         settings=form.settings(), plan=plan, planner=form.planner,
                                         speaker_hints={s: x for s, x in hints.items() if x}), actor=actor)
    except ValidationError as error:  # the settings' own checks: name the field, not pydantic's internals
        raise gr.Error(html.escape(field_problems(error.errors())[1]), title="Cannot start") from None
    except VibeVoiceError as error:
        raise gr.Error(html.escape(str(error)).replace("\n", "<br>"), title="Cannot start") from None
    return info.id, status_html(info)


def resume_job(service: JobService, job_id: str):
    try:
        info = service.resume(job_id.strip())
    except VibeVoiceError as error:
        raise gr.Error(str(error)) from None
    return info.id, status_html(info)


def watch_job(service: JobService, job_id: str):
    """Yield progress until the job ends, then the finished audio and its downloads."""
    if not job_id:
        yield gr.skip(), gr.skip(), gr.skip()
        return
    try:
        while (info := service.info(job_id)).status in ACTIVE:
            yield status_html(info), gr.skip(), gr.skip()
            time.sleep(POLL_SECONDS)
        if info.status != "done" or "mp3" not in info.outputs:
            yield status_html(info), None, None
            return
        downloads = [str(service.output_path(job_id, kind)) for kind in info.outputs]
        yield status_html(info), str(service.output_path(job_id, "mp3")), downloads
    except VibeVoiceError as error:  # deleted while watched, or an id that is no job
        yield f"<div id='vv-progress' data-status='gone'>{html.escape(str(error))}</div>", None, None


def list_jobs(service: JobService):
    return [[j.id, j.title, j.status, f"{j.done}/{j.total}", j.created] for j in service.list()]


def default_model_dir() -> str:
    return os.environ.get("VIBEVOICE_MODEL_DIR", "")


def engine_model_dir_js() -> str:
    """The shared model-directory field follows the engine (its configured checkpoint, unless one was
    typed), in the browser: done on the server, the answer could land after the user had typed a path
    and overwrite it (seen in CI on a busy machine: a path typed just after switching the engine was
    replaced by the empty default, and the job failed for another reason than the user's folder)."""
    defaults = {"vibevoice": default_model_dir(), "qwen3": _qwen3_default()}
    by_label = {label: defaults[engine] for label, engine in ENGINES.items() if engine in defaults}
    return (f"(label, current) => {{ const byLabel = {json.dumps(by_label)}; const typed = (current || '').trim();"
            " if (typed && !Object.values(byLabel).includes(typed)) return current;"
            " return label in byLabel ? byLabel[label] : (current || ''); }")


def _qwen3_default() -> str:
    from vibevoice.engines.qwen3.configuration import default_model_dir as qwen3_dir

    return qwen3_dir() or ""

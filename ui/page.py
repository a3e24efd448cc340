"""The web page (Gradio Blocks): layout in ``build_page``, handlers as plain functions over the job queue.

Everything the page does goes through ``JobService`` like the API and CLI do, so a job started here
keeps rendering when the tab closes and shows up again in the job list after a reload or a restart.
While a job renders, a plain ``<audio>`` element plays the progressive MP3 stream; when the job is
done the finished, loudness-normalised file takes over at the same playback position (``PLAYER_JS``).
"""

from __future__ import annotations

import html
import time
from functools import partial
from pathlib import Path

import gradio as gr

from vibevoice import paths
from vibevoice.engines import get_engine
from vibevoice.jobs import JobInfo, JobRequest, JobService
from vibevoice.render import RenderSettings, clock
from vibevoice.script import ScriptError, parse_script
from vibevoice.voices import VoiceError, assign_voices, load_templates

MAX_SPEAKERS = 4
EXAMPLES = {p.stem: p for p in sorted((paths.PRESETS_DIR / "scripts").glob("*.txt"))}
POLL_SECONDS = 0.5

PLAYER_JS = """
() => {
  // The stream plays first; the finished file replaces it at the same position, preloaded, so the
  // switch has no gap. Both are the same timeline, only the final one is loudness-normalised.
  window.vvStream = (jobId) => {
    const box = document.getElementById("vv-player");
    if (!box || !jobId) return;
    box.innerHTML = "";
    const a = document.createElement("audio");
    a.controls = true; a.autoplay = true; a.id = "vv-audio"; a.dataset.job = jobId;
    a.src = `/v1/jobs/${jobId}/stream`;
    box.appendChild(a);
    a.play().catch(() => {});
  };
  window.vvFinal = (jobId) => {
    const box = document.getElementById("vv-player");
    const old = document.getElementById("vv-audio");
    if (!box || !jobId) return;
    const next = document.createElement("audio");
    next.controls = true; next.preload = "auto"; next.dataset.job = jobId; next.dataset.final = "1";
    next.src = `/v1/jobs/${jobId}/files/mp3`;
    next.addEventListener("canplaythrough", () => {
      if (old && old.dataset.job === jobId && !old.paused && !old.ended) {
        next.currentTime = old.currentTime; next.play().catch(() => {});
      }
      if (old) old.pause();
      next.id = "vv-audio"; box.innerHTML = ""; box.appendChild(next);
    }, { once: true });
    next.load();
  };
}
"""


def build_page(service: JobService) -> gr.Blocks:
    templates = load_templates()
    voice_choices = [(t.name, t.id) for t in templates.values()]
    with gr.Blocks(title="VibeVoice WebUI") as page:
        gr.Markdown("# VibeVoice WebUI\nPaste a dialogue, give each speaker a voice, and generate a podcast.")
        job_id = gr.Textbox(visible=False, elem_id="vv-job-id")  # a component, so API clients get the id too
        with gr.Row():
            with gr.Column(scale=3):
                example = gr.Dropdown(list(EXAMPLES), label="Example scripts", value=None)
                script = gr.Textbox(label="Script", lines=14, max_lines=40, elem_id="vv-script",
                                    placeholder="[Alice] Do you think AI can write novels?\n[Ben] Sure, once it learns to tell stories.")
                problems = gr.Markdown(elem_id="vv-problems")
            with gr.Column(scale=3):
                gr.Markdown("### Voices")
                rows = []
                for n in range(MAX_SPEAKERS):
                    with gr.Row(visible=False) as row:
                        name = gr.Textbox(label="Speaker", interactive=False, scale=2, min_width=80,
                                          elem_id=f"vv-speaker-{n}")
                        voice = gr.Dropdown(voice_choices, label="Voice", scale=4, min_width=160, elem_id=f"vv-voice-{n}")
                        hint = gr.Textbox(label="Emotion hint", placeholder="e.g. calm", scale=2, min_width=80)
                        preview = gr.Button("▶", scale=0, min_width=44, elem_id=f"vv-preview-{n}")
                    rows.append((row, name, voice, hint, preview))
                sample = gr.Audio(label="Voice preview", interactive=False, visible=True)
                with gr.Accordion("Settings", open=False):
                    speed = gr.Slider(0.5, 2.0, value=1.0, step=0.05, label="Speed")
                    seed = gr.Number(value=0, precision=0, label="Seed (sampling engines)")
                    turn_gap = gr.Slider(0.0, 2.0, value=0.45, step=0.05, label="Gap between speakers (s)")
                estimate = gr.Markdown(elem_id="vv-estimate")
        generate = gr.Button("Generate", variant="primary", elem_id="vv-generate")
        status = gr.HTML(elem_id="vv-status")
        gr.HTML('<div id="vv-player"></div>')
        with gr.Row():
            final_audio = gr.Audio(label="Finished audio", interactive=False, elem_id="vv-final")
            files = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="vv-files")
        with gr.Accordion("Jobs", open=False):
            jobs_table = gr.Dataframe(headers=["id", "title", "status", "progress", "created"], interactive=False,
                                      elem_id="vv-jobs")
            with gr.Row():
                chosen = gr.Textbox(label="Job id", scale=2)
                refresh = gr.Button("Refresh", scale=0)
                resume = gr.Button("Resume / open", scale=0)

        speaker_outputs = [c for row in rows for c in (row[0], row[1], row[2])]
        example.change(load_example, example, script)
        script.change(validate, script, [problems, estimate, *speaker_outputs], trigger_mode="always_last",
                      api_name="validate")
        for _, name, voice, _, button in rows:
            button.click(preview_voice, voice, sample)
        inputs = [script, speed, seed, turn_gap, *[c for row in rows for c in (row[1], row[2])]]
        generate.click(partial(start_job, service), inputs, [job_id, status], api_name="start_job") \
            .then(None, job_id, None, js="(id) => window.vvStream && window.vvStream(id)") \
            .then(partial(watch_job, service), job_id, [status, final_audio, files]) \
            .then(None, job_id, None, js="(id) => window.vvFinal && window.vvFinal(id)")
        refresh.click(partial(list_jobs, service), None, jobs_table)
        resume.click(partial(resume_job, service), chosen, [job_id, status]) \
            .then(None, job_id, None, js="(id) => window.vvStream && window.vvStream(id)") \
            .then(partial(watch_job, service), job_id, [status, final_audio, files]) \
            .then(None, job_id, None, js="(id) => window.vvFinal && window.vvFinal(id)")
        page.load(partial(list_jobs, service), None, jobs_table)
    return page


# -- handlers (plain functions over the library) -----------------------------------------------------

def load_example(name: str | None) -> str:
    return EXAMPLES[name].read_text("utf-8") if name in EXAMPLES else gr.skip()


def validate(text: str):
    """Parse as the user types: problems with line numbers, the estimate, and one voice row per speaker."""
    hidden = [gr.update(visible=False), gr.update(), gr.update()] * MAX_SPEAKERS
    if not text.strip():
        return "", "", *hidden
    try:
        script = parse_script(text)
    except ScriptError as error:
        items = "\n".join(f"- **line {p.line}, column {p.column}:** {html.escape(p.message)}"
                          + (f" _(expected: {html.escape(p.expected)})_" if p.expected else "")
                          for p in error.problems)
        return f"⚠️ The script has {len(error.problems)} problem(s):\n{items}", "", *hidden
    voices = assign_voices(script.speakers, script.speaker_languages(), {}, load_templates())
    updates = []
    for n in range(MAX_SPEAKERS):
        if n < len(script.speakers):
            speaker = script.speakers[n]
            updates += [gr.update(visible=True), gr.update(value=speaker), gr.update(value=voices[speaker].id)]
        else:
            updates += [gr.update(visible=False), gr.update(value=""), gr.update()]
    seconds = script.estimated_seconds()
    rtf = max(get_engine(v.engine).capabilities.typical_rtf for v in voices.values())
    estimate = (f"✅ {len(script.speakers)} speaker(s), {len(script.lines)} lines, about **{clock(seconds)}** of "
                f"audio; rendering takes about {clock(seconds * rtf)} here.")
    return "", estimate, *updates


def preview_voice(voice_id: str | None):
    if not voice_id:
        raise gr.Error("Pick a voice first.")
    template = load_templates()[voice_id]
    text = "你好！很高兴认识你，我们开始吧。" if template.languages == ["zh"] else "Hi! This is how I sound. Shall we begin?"
    audio = get_engine(template.engine).speak(text, template)
    return 24_000, audio


def start_job(service: JobService, text: str, speed: float, seed: float, turn_gap: float, *speaker_voice):
    pairs = dict(zip(speaker_voice[0::2], speaker_voice[1::2]))
    voices = {s: v for s, v in pairs.items() if s and v}
    try:
        settings = RenderSettings(speed=speed, seed=int(seed or 0), turn_gap=turn_gap)
        info = service.submit(JobRequest(script=text, voices=voices, settings=settings))
    except (ScriptError, VoiceError, ValueError) as error:
        raise gr.Error(str(error).replace("\n", "<br>"), title="Cannot start") from None
    return info.id, _status_html(info)


def resume_job(service: JobService, job_id: str):
    try:
        info = service.resume(job_id.strip())
    except (KeyError, ValueError) as error:
        raise gr.Error(str(error)) from None
    return info.id, _status_html(info)


def watch_job(service: JobService, job_id: str):
    """Yield progress until the job ends, then the finished audio and its downloads."""
    if not job_id:
        yield gr.skip(), gr.skip(), gr.skip()
        return
    while True:
        info = service.info(job_id)
        if info.status not in ("queued", "rendering", "rendered"):
            break
        yield _status_html(info), gr.skip(), gr.skip()
        time.sleep(POLL_SECONDS)
    if info.status != "done" or "mp3" not in info.outputs:
        yield _status_html(info), None, None
        return
    downloads = [str(service.output_path(job_id, kind)) for kind in info.outputs]
    yield _status_html(info), str(service.output_path(job_id, "mp3")), downloads


def list_jobs(service: JobService):
    return [[j.id, j.title, j.status, f"{j.done}/{j.total}", j.created] for j in service.list()]


def _status_html(info: JobInfo) -> str:
    percent = 100 * info.done / max(1, info.total)
    eta = f" · ETA {clock(info.eta_seconds)}" if info.eta_seconds is not None else ""
    line = f" · line {info.current_line + 1}" if info.current_line is not None else ""
    message = f"<div class='vv-message'>{html.escape(info.message)}</div>" if info.message else ""
    return (f"<div id='vv-progress' data-status='{info.status}' data-job='{info.id}'>"
            f"<progress max='100' value='{percent:.0f}' style='width:100%'></progress>"
            f"<div>{info.status} · {info.done}/{info.total} chunks · {info.audio_seconds:.1f} s of audio{eta}{line}"
            f" · job <code>{info.id}</code></div>{message}</div>")


def example_path(name: str) -> Path:
    return EXAMPLES[name]

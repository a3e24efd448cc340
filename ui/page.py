"""The web page (Gradio Blocks): the layout, built in small sections, and the wiring of its events.

What the buttons do lives in ``handlers`` (plain functions over the job service). Everything goes
through ``JobService`` like the API and CLI do, so a job started here keeps rendering when the tab
closes and shows up again in the job list after a reload or a restart. While a job renders, its PCM
stream plays through Web Audio from the first chunk on; when the job is done the finished,
loudness-normalised file takes over at the same playback position (``ui.player``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import gradio as gr

from ui import handlers as h
from ui import transcript
from ui.player import LIVE_JS, PLAYER_JS
from vibevoice.delivery import default_planner
from vibevoice.job.service import JobService
from vibevoice.voices import CONSENT_STATEMENT

PAGE_JS = "() => { " + "".join(f"({js.strip()})(); " for js in (LIVE_JS, PLAYER_JS, transcript.TRANSCRIPT_JS)) + "}"


SAMPLING = ("temperature", "top_p", "top_k", "repetition_penalty")  # ``handlers.JobForm``'s last fields


@dataclass
class Row:
    """One speaker row's components (the values they hold reach handlers as ``handlers.SpeakerRow``)."""

    group: gr.Group
    name: gr.Textbox
    voice: gr.Dropdown
    hint: gr.Textbox
    clip: gr.Audio
    preview: gr.Button

    @property
    def values(self) -> list:
        return [self.name, self.voice, self.hint, self.clip]  # the order of ``handlers.SpeakerRow``'s fields


@dataclass
class Controls:
    """Every component a handler reads or writes, by name."""

    job_id: gr.Textbox
    remembered: gr.BrowserState
    example: gr.Dropdown = None
    script: gr.Textbox = None
    problems: gr.Markdown = None
    rows: list[Row] = field(default_factory=list)
    consent: gr.Checkbox = None
    sample: gr.Audio = None
    settings: dict[str, gr.components.Component] = field(default_factory=dict)
    estimate: gr.Markdown = None
    transcript: gr.Dataframe = None
    # The director's plan behind the transcript, to tell its guesses from edits (a hidden component, not a
    # gr.State: any State makes Gradio hold a heartbeat connection open for the page's whole life).
    planned: gr.JSON = None
    transcript_note: gr.Markdown = None
    direct: gr.Button = None
    line: gr.Number = None  # the transcript line chosen (1-based), its time, and what the page says about it
    line_time: gr.Textbox = None
    line_note: gr.Markdown = None
    hear: gr.Button = None
    audition: gr.Button = None
    audition_audio: gr.Audio = None
    rerender: gr.Button = None
    generate: gr.Button = None
    status: gr.HTML = None
    final_audio: gr.Audio = None
    files: gr.File = None
    jobs_table: gr.Dataframe = None
    chosen: gr.Textbox = None
    refresh: gr.Button = None
    resume: gr.Button = None
    design_name: gr.Textbox = None
    design_text: gr.Textbox = None
    design: gr.Button = None
    design_note: gr.Markdown = None

    @property
    def row_values(self) -> list:
        return [c for row in self.rows for c in row.values]

    @property
    def job_inputs(self) -> list:
        """``handlers.JobForm``'s fields, in order (also the order of the ``/start_job`` API endpoint)."""
        s = self.settings
        return [self.script, s["engine"], s["model_dir"], s["speed"], s["seed"], s["cfg"], s["steps"], s["turn_gap"],
                self.consent, s["planner"], s["content"], s["notice"], s["qa"], self.transcript, *self.row_values,
                *[s[name] for name in SAMPLING], self.planned]  # new inputs go last: older callers still fit


def build_page(service: JobService) -> gr.Blocks:
    with gr.Blocks(title="VibeVoice WebUI") as page:
        gr.Markdown("# VibeVoice WebUI\nPaste a dialogue, give each speaker a voice, and generate a podcast.")
        c = Controls(job_id=gr.Textbox(visible=False, elem_id="vv-job-id"),  # a component: API clients get the id
                     remembered=gr.BrowserState({}, storage_key="vibevoice-voices"),
                     planned=gr.JSON({}, visible=False))
        with gr.Row():
            with gr.Column(scale=3):
                _script_section(c)
            with gr.Column(scale=3):
                _voices_section(c)
                _design_section(c)
                _settings_section(c)
                c.estimate = gr.Markdown(elem_id="vv-estimate")
        c.generate = gr.Button("Generate", variant="primary", elem_id="vv-generate")
        _output_section(c)
        _transcript_section(c)
        _jobs_section(c)
        _wire_script(c)
        _wire_jobs(page, c, service)
    return page


def _script_section(c: Controls) -> None:
    c.example = gr.Dropdown(list(h.EXAMPLES), label="Example scripts", value=None)
    c.script = gr.Textbox(label="Script", lines=14, max_lines=40, elem_id="vv-script",
                          placeholder="[Alice] Do you think AI can write novels?\n"
                                      "[Ben] Sure, once it learns to tell stories.")
    c.problems = gr.Markdown(elem_id="vv-problems")


def _voices_section(c: Controls) -> None:
    voice_choices = h.voice_choices(next(iter(h.ENGINES.values())))
    gr.Markdown("### Voices")
    for n in range(h.MAX_SPEAKERS):
        with gr.Group(visible=False) as group:
            with gr.Row():
                name = gr.Textbox(label="Speaker", interactive=False, scale=2, min_width=80, elem_id=f"vv-speaker-{n}")
                voice = gr.Dropdown(voice_choices, label="Voice", scale=4, min_width=160, elem_id=f"vv-voice-{n}")
                preview = gr.Button("▶", scale=0, min_width=44, elem_id=f"vv-preview-{n}")
            with gr.Row():
                hint = gr.Textbox(label="Emotion hint", placeholder="e.g. calm, excited", scale=2, min_width=80,
                                  elem_id=f"vv-hint-{n}")
                clip = gr.Audio(label="Reference clip (VibeVoice or Qwen3-TTS Base cloning)", sources=["upload"], type="filepath",
                                scale=4, min_width=120, elem_id=f"vv-clip-{n}", visible=False)
        c.rows.append(Row(group, name, voice, hint, clip, preview))
    c.consent = gr.Checkbox(label=f"{CONSENT_STATEMENT} (This applies to every clip I upload here.)",
                            visible=False, elem_id="vv-consent")
    c.sample = gr.Audio(label="Voice preview", interactive=False)


def _settings_section(c: Controls) -> None:
    s = c.settings
    with gr.Accordion("Engine and settings", open=False):
        s["engine"] = gr.Radio(list(h.ENGINES), value=next(iter(h.ENGINES)), label="Engine")
        s["model_dir"] = gr.Textbox(label="VibeVoice model directory (converted checkpoint) or Qwen3-TTS checkpoint "
                                    "directory", value=h.default_model_dir(), elem_id="vv-model-dir")
        with gr.Row():
            s["speed"] = gr.Slider(0.5, 2.0, value=1.0, step=0.05, label="Speed")
            s["turn_gap"] = gr.Slider(0.0, 2.0, value=0.45, step=0.05, label="Gap between speakers (s)")
        with gr.Row():
            s["seed"] = gr.Number(value=0, precision=0, label="Seed")
            s["cfg"] = gr.Slider(1.0, 3.0, value=1.3, step=0.05, label="CFG scale (VibeVoice)")
            s["steps"] = gr.Slider(1, 50, value=10, step=1, label="Diffusion steps (VibeVoice)")
        with gr.Row():  # token sampling (Qwen3-TTS); temperature 0 = greedy, the same take every time
            s["temperature"] = gr.Slider(0.0, 2.0, value=0.9, step=0.05, label="Temperature (Qwen3-TTS; 0 = greedy)",
                                         elem_id="vv-temperature")
            s["top_p"] = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top-p", elem_id="vv-top-p")
            s["top_k"] = gr.Slider(0, 200, value=50, step=1, label="Top-k (0 = off)", elem_id="vv-top-k")
            s["repetition_penalty"] = gr.Slider(1.0, 2.0, value=1.05, step=0.01, label="Repetition penalty",
                                                elem_id="vv-repetition-penalty")
        s["planner"] = gr.Dropdown(["auto", "rules", "local", "http", "none"], value=default_planner(),
                                   label="Director (delivery planner): auto = local LLM if it loads")
        s["qa"] = gr.Checkbox(label="Automatic QA: listen to every take and re-render wrong words or the wrong voice "
                                    "(slower)", value=False, elem_id="vv-qa")
    with gr.Accordion("Responsible use", open=False):
        with gr.Row():
            s["content"] = gr.Dropdown(list(h.FILTER_MODES), value=h.filter_label(), label="Content filter",
                                       elem_id="vv-content-filter")
            s["notice"] = gr.Dropdown(list(h.NOTICES), value=next(iter(h.NOTICES)), label="Spoken AI disclosure",
                                      elem_id="vv-notice")
        gr.Markdown("Every file carries AI-generated-speech tags and an inaudible watermark (`vibevoice detect FILE` "
                    "finds it). Jobs are recorded in a local audit log that never leaves this machine.")


def _transcript_section(c: Controls) -> None:
    """The director's desk: one row per line; choose a line, audition a change, hear it, re-render it."""
    with gr.Accordion("Transcript (the director's desk)", open=True):
        c.transcript_note = gr.Markdown("Plan the delivery to review and edit it line by line (Generate plans it "
                                        "otherwise). After a render, choose a line to hear it, audition a change "
                                        "or re-render just that line.", elem_id="vv-transcript-note")

        c.transcript = gr.Dataframe(headers=transcript.COLUMNS, datatype=transcript.DATATYPES, interactive=True,
                                    wrap=True, elem_id="vv-transcript")
        with gr.Row():
            c.direct = gr.Button("Plan delivery", elem_id="vv-direct", scale=0)
            c.hear = gr.Button("▶ Hear line", elem_id="vv-hear", scale=0)
            c.audition = gr.Button("♪ Audition change", elem_id="vv-audition", scale=0)
            c.rerender = gr.Button("⟳ Re-render line", elem_id="vv-rerender", scale=0)
            c.line_note = gr.Markdown("", elem_id="vv-line-note")
        c.line = gr.Number(value=0, precision=0, visible=False, elem_id="vv-line")
        c.line_time = gr.Textbox(visible=False, elem_id="vv-line-time")
        c.audition_audio = gr.Audio(label="Audition (this line alone, not saved)", interactive=False, autoplay=True,
                                    elem_id="vv-audition-audio")


def _design_section(c: Controls) -> None:
    with gr.Accordion("Design a voice (Qwen3-TTS VoiceDesign)", open=False):
        with gr.Row():
            c.design_name = gr.Textbox(label="Voice name", scale=1, min_width=100, elem_id="vv-design-name")
            c.design_text = gr.Textbox(label="Description", scale=3, elem_id="vv-design-description",
                                       placeholder="e.g. a calm, low male voice in his fifties, slightly husky")
        c.design = gr.Button("Create designed voice", elem_id="vv-design")
        c.design_note = gr.Markdown(elem_id="vv-design-note")



def _output_section(c: Controls) -> None:
    c.status = gr.HTML(elem_id="vv-status")
    gr.HTML('<div id="vv-player"></div>')
    with gr.Row():
        c.final_audio = gr.Audio(label="Finished audio", interactive=False, elem_id="vv-final")
        c.files = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="vv-files")


def _jobs_section(c: Controls) -> None:
    with gr.Accordion("Jobs", open=False):
        c.jobs_table = gr.Dataframe(headers=["id", "title", "status", "progress", "created"], interactive=False,
                                    elem_id="vv-jobs")
        with gr.Row():
            c.chosen = gr.Textbox(label="Job id", scale=2)
            c.refresh = gr.Button("Refresh", scale=0)
            c.resume = gr.Button("Resume / open", scale=0, elem_id="vv-resume")


def _wire_script(c: Controls) -> None:
    """Live checks as the script or the engine changes; cloning uploads only under a cloning engine."""
    s = c.settings
    c.example.change(h.load_example, c.example, c.script)
    speaker_outputs = [x for row in c.rows for x in (row.group, row.name, row.voice)]
    checks = dict(fn=h.validate, inputs=[c.script, s["engine"], s["model_dir"], c.remembered, s["content"]],
                  outputs=[c.problems, c.estimate, *speaker_outputs])
    c.script.change(**checks, trigger_mode="always_last", api_name="validate")
    s["engine"].change(**checks, api_name=False)
    s["model_dir"].blur(**checks, api_name=False)
    s["content"].change(**checks, api_name=False)
    cloning = [c.consent, *[row.clip for row in c.rows]]
    s["engine"].change(h.cloning_visible(len(cloning)), s["engine"], cloning, api_name=False)
    s["engine"].change(None, [s["engine"], s["model_dir"]], s["model_dir"], js=h.engine_model_dir_js(), api_name=False)
    c.design.click(h.create_designed_voice, [c.design_name, c.design_text], [c.design_note, s["engine"], *[r.voice for r in c.rows]],
                   api_name="design_voice")
    for row in c.rows:
        row.preview.click(h.preview_voice, row.voice, c.sample)
    c.direct.click(h.direct_plan, [c.script, s["planner"], *c.row_values],
                   [c.transcript, c.transcript_note, c.planned], api_name="direct")
    c.transcript.select(transcript.select, c.transcript, [c.line, c.line_time, c.line_note], api_name=False)
    c.hear.click(None, c.line_time, None, js="(t) => window.vvPlayLine && window.vvPlayLine(t)")


def _wire_jobs(page: gr.Blocks, c: Controls, service: JobService) -> None:
    """Generate, resume and re-render start a job; every start plays the stream, then the finished file."""
    def follow(event):
        return event.then(None, c.job_id, None, js="(id) => window.vvStream && window.vvStream(id)") \
            .then(partial(h.watch_job, service), c.job_id, [c.status, c.final_audio, c.files], api_name=False,
                  show_progress="hidden") \
            .then(None, c.job_id, None, js="(id) => window.vvFinal && window.vvFinal(id)") \
            .then(partial(transcript.of_job, service), c.job_id, [c.transcript, c.planned], api_name=False)

    def start_job(request: gr.Request, *values):
        """Gradio passes ``request`` (found by its annotation; a ``partial`` would hide it)."""
        return h.start_job(service, request, h.JobForm.from_values(values))

    follow(c.generate.click(start_job, c.job_inputs, [c.job_id, c.status], api_name="start_job"))
    c.generate.click(h.remember, [c.remembered, c.script, *c.row_values], c.remembered, api_name=False)
    # Named endpoints for gradio_client users; the progress watcher and page-load helpers stay internal.
    follow(c.resume.click(partial(h.resume_job, service), c.chosen, [c.job_id, c.status], api_name="resume_job"))
    c.audition.click(partial(transcript.audition, service), [c.job_id, c.transcript, c.line], c.audition_audio,
                     api_name="audition_line")
    follow(c.rerender.click(partial(transcript.rerender, service), [c.job_id, c.transcript, c.line],
                            [c.job_id, c.status], api_name="rerender_line"))
    c.refresh.click(partial(h.list_jobs, service), None, c.jobs_table, api_name="list_jobs")
    page.load(partial(h.list_jobs, service), None, c.jobs_table, api_name=False)
    follow(page.load(partial(h.active_job, service), None, c.job_id, api_name=False))  # reattach after a reload

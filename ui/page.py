"""The web page (Gradio Blocks): layout in ``build_page``, handlers as plain functions over the job queue.

Everything the page does goes through ``JobService`` like the API and CLI do, so a job started here
keeps rendering when the tab closes and shows up again in the job list after a reload or a restart.
While a job renders, a plain ``<audio>`` element plays the progressive MP3 stream; when the job is
done the finished, loudness-normalised file takes over at the same playback position (``PLAYER_JS``).
"""

from __future__ import annotations

from functools import partial

import gradio as gr

from ui import handlers as h
from vibevoice.delivery import default_planner
from vibevoice.jobs import JobService
from vibevoice.voices import CONSENT_STATEMENT, load_templates

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
        remembered = gr.BrowserState({}, storage_key="vibevoice-voices")
        with gr.Row():
            with gr.Column(scale=3):
                example = gr.Dropdown(list(h.EXAMPLES), label="Example scripts", value=None)
                script = gr.Textbox(label="Script", lines=14, max_lines=40, elem_id="vv-script",
                                    placeholder="[Alice] Do you think AI can write novels?\n"
                                                "[Ben] Sure, once it learns to tell stories.")
                problems = gr.Markdown(elem_id="vv-problems")
            with gr.Column(scale=3):
                gr.Markdown("### Voices")
                rows = []
                for n in range(h.MAX_SPEAKERS):
                    with gr.Group(visible=False) as row:
                        with gr.Row():
                            name = gr.Textbox(label="Speaker", interactive=False, scale=2, min_width=80,
                                              elem_id=f"vv-speaker-{n}")
                            voice = gr.Dropdown(voice_choices, label="Voice", scale=4, min_width=160,
                                                elem_id=f"vv-voice-{n}")
                            preview = gr.Button("▶", scale=0, min_width=44, elem_id=f"vv-preview-{n}")
                        with gr.Row():
                            hint = gr.Textbox(label="Emotion hint", placeholder="e.g. calm, excited", scale=2,
                                              min_width=80, elem_id=f"vv-hint-{n}")
                            clip = gr.Audio(label="Reference clip (VibeVoice cloning)", sources=["upload"],
                                            type="filepath", scale=4, min_width=120, elem_id=f"vv-clip-{n}",
                                            visible=False)
                    rows.append((row, name, voice, hint, clip, preview))
                consent = gr.Checkbox(label=f"{CONSENT_STATEMENT} (This applies to every clip I upload here.)",
                                      visible=False, elem_id="vv-consent")
                sample = gr.Audio(label="Voice preview", interactive=False)
                with gr.Accordion("Engine and settings", open=False):
                    engine = gr.Radio(list(h.ENGINES), value=next(iter(h.ENGINES)), label="Engine")
                    model_dir = gr.Textbox(label="VibeVoice model directory (converted checkpoint)",
                                           value=h.default_model_dir())
                    with gr.Row():
                        speed = gr.Slider(0.5, 2.0, value=1.0, step=0.05, label="Speed")
                        turn_gap = gr.Slider(0.0, 2.0, value=0.45, step=0.05, label="Gap between speakers (s)")
                    with gr.Row():
                        seed = gr.Number(value=0, precision=0, label="Seed")
                        cfg = gr.Slider(1.0, 3.0, value=1.3, step=0.05, label="CFG scale (VibeVoice)")
                        steps = gr.Slider(1, 50, value=10, step=1, label="Diffusion steps (VibeVoice)")
                    planner = gr.Dropdown(["auto", "rules", "local", "http", "none"], value=default_planner(),
                                          label="Director (delivery planner): auto = local LLM if it loads")
                    qa = gr.Checkbox(label="Automatic QA: listen to every take and re-render wrong words or the "
                                           "wrong voice (slower)", value=False, elem_id="vv-qa")
                with gr.Accordion("Responsible use", open=False):
                    with gr.Row():
                        content = gr.Dropdown(list(h.FILTER_MODES), value=h.filter_label(), label="Content filter",
                                              elem_id="vv-content-filter")
                        notice = gr.Dropdown(list(h.NOTICES), value=next(iter(h.NOTICES)),
                                             label="Spoken AI disclosure", elem_id="vv-notice")
                    gr.Markdown("Every file carries AI-generated-speech tags and an inaudible watermark "
                                "(`vibevoice detect FILE` finds it). Jobs are recorded in a local audit log "
                                "that never leaves this machine.")
                estimate = gr.Markdown(elem_id="vv-estimate")
        with gr.Accordion("Delivery plan (the director)", open=False):
            plan_note = gr.Markdown("Plan the delivery to review and edit it; otherwise Generate plans it for you.")
            plan_table = gr.Dataframe(headers=h.PLAN_COLUMNS, interactive=True, wrap=True, elem_id="vv-plan",
                                      datatype=["number", "str", "str", "str", "number", "number", "number",
                                                "number", "str"])
            direct = gr.Button("Plan delivery", elem_id="vv-direct")
        generate = gr.Button("Generate", variant="primary", elem_id="vv-generate")
        status = gr.HTML(elem_id="vv-status")
        gr.HTML('<div id="vv-player"></div>')
        with gr.Row():
            final_audio = gr.Audio(label="Finished audio", interactive=False, elem_id="vv-final")
            files = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="vv-files")
        with gr.Accordion("Re-render one line", open=False):
            with gr.Row():
                line_no = gr.Number(value=1, precision=0, minimum=1, label="Line (as numbered in the subtitles)")
                rate = gr.Slider(0.7, 1.3, value=0.9, step=0.05, label="Pace for that line")
                rerender = gr.Button("Re-render line", scale=0)
        with gr.Accordion("Jobs", open=False):
            jobs_table = gr.Dataframe(headers=["id", "title", "status", "progress", "created"], interactive=False,
                                      elem_id="vv-jobs")
            with gr.Row():
                chosen = gr.Textbox(label="Job id", scale=2)
                refresh = gr.Button("Refresh", scale=0)
                resume = gr.Button("Resume / open", scale=0)

        speaker_outputs = [c for row in rows for c in (row[0], row[1], row[2])]
        example.change(h.load_example, example, script)
        checks = dict(fn=h.validate, inputs=[script, engine, model_dir, remembered, content],
                      outputs=[problems, estimate, *speaker_outputs])
        script.change(**checks, trigger_mode="always_last", api_name="validate")
        engine.change(**checks, api_name=False)
        cloning = [consent, *[row[4] for row in rows]]  # uploads only matter to a cloning engine
        engine.change(lambda label: [gr.update(visible=h.ENGINES[label] == "vibevoice")] * len(cloning),
                      engine, cloning, api_name=False)
        model_dir.blur(**checks, api_name=False)
        content.change(**checks, api_name=False)
        for _, _, voice, _, _, button in rows:
            button.click(h.preview_voice, voice, sample)
        row_inputs = [c for row in rows for c in (row[1], row[2], row[3], row[4])]
        inputs = [script, engine, model_dir, speed, seed, cfg, steps, turn_gap, consent, planner, content, notice,
                  qa, plan_table, *row_inputs]
        direct.click(h.direct_plan, [script, planner, *row_inputs], [plan_table, plan_note], api_name="direct")

        def follow(event):
            """Play the stream, watch progress, then hand the player the finished file."""
            return event.then(None, job_id, None, js="(id) => window.vvStream && window.vvStream(id)") \
                .then(partial(h.watch_job, service), job_id, [status, final_audio, files]) \
                .then(None, job_id, None, js="(id) => window.vvFinal && window.vvFinal(id)")

        def start_job(request: gr.Request, *values):
            """Gradio passes ``request`` (found by its annotation; a ``partial`` would hide it)."""
            return h.start_job(service, request, *values)

        follow(generate.click(start_job, inputs, [job_id, status], api_name="start_job"))
        generate.click(h.remember, [remembered, script, *row_inputs], remembered, api_name=False)
        follow(resume.click(partial(h.resume_job, service), chosen, [job_id, status]))
        follow(rerender.click(partial(h.rerender_line, service), [job_id, line_no, rate], [job_id, status]))
        refresh.click(partial(h.list_jobs, service), None, jobs_table)
        page.load(partial(h.list_jobs, service), None, jobs_table)
        follow(page.load(partial(h.active_job, service), None, job_id))  # reattach after a reload
    return page

"""The transcript: the director's desk on the page, one row per line.

Each row shows the speaker, the words, the delivery the director planned (emotion, intensity, pace,
pauses, its note) and, once rendered, where the line lies in the finished audio. The user edits a
row's delivery, auditions that line alone with the change (nothing is written), hears it in place
(▶ seeks the player), and re-renders just that line (⟳: only its chunks get new keys; every other
line keeps its audio). Before a render the same table is the plan Generate uses. ``TRANSCRIPT_JS``
colours rows by speaker and highlights the line being heard.
"""

from __future__ import annotations

import html
import json

import gradio as gr
import numpy as np

from ui.status import status_html
from vibevoice import delivery
from vibevoice.audio import SAMPLE_RATE
from vibevoice.engines import Segment
from vibevoice.errors import VibeVoiceError
from vibevoice.export import layout
from vibevoice.job.runner import Job
from vibevoice.job.service import JobService
from vibevoice.plan import load_plan
from vibevoice.plan.schema import LinePlan, Plan
from vibevoice.script import Script, ScriptError, parse_script

COLUMNS = ["line", "speaker", "text", "emotion", "intensity", "pace", "pause before", "pause after", "time", "note"]
DATATYPES = ["number", "str", "str", "str", "number", "number", "number", "number", "str", "str"]
EDITABLE = ("emotion", "intensity", "pace", "pause before", "pause after")

TRANSCRIPT_JS = """
() => {
  // Colour each row by speaker and highlight the line being heard; ▶ seeks the player to a line (the live
  // Web Audio stream while the job renders, the finished file after: ``ui.player``'s vvPlayer()).
  const palette = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2"];
  // Gradio's table draws its visible rows as [role=row] blocks of [role=gridcell]s (virtualised).
  const rows = () => Array.from(document.querySelectorAll("#vv-transcript [role=row][data-index]"));
  const cell = (row, name) => {
    const heads = Array.from(document.querySelectorAll("#vv-transcript th[role=columnheader]")).map(h => h.title);
    const i = heads.indexOf(name);
    return i < 0 ? "" : (row.querySelectorAll("[role=gridcell]")[i]?.innerText || "").trim();
  };
  const seconds = (t) => { const m = /(\\d+):(\\d+(?:\\.\\d+)?)/.exec(t); return m ? (+m[1]) * 60 + (+m[2]) : null; };
  const span = (row) => { const [a, b] = cell(row, "time").split("–").map(seconds); return [a, b]; };
  window.vvTranscriptPaint = () => {
    const speakers = [];
    for (const row of rows()) {
      const who = cell(row, "speaker"); if (!speakers.includes(who)) speakers.push(who);
      row.style.borderLeft = `6px solid ${palette[speakers.indexOf(who) % palette.length]}`;
    }
  };
  window.vvPlayLine = (time) => {
    const audio = window.vvPlayer(); const [a, b] = (time || "").split("–").map(seconds);
    if (!audio || a === null) return;
    audio.currentTime = a; audio.dataset.stopAt = b ?? ""; audio.play().catch(() => {});
  };
  setInterval(() => {
    window.vvTranscriptPaint();
    const audio = window.vvPlayer(); if (!audio) return;  // the live stream, else the <audio>
    const now = audio.currentTime;
    if (audio.dataset.stopAt && now >= +audio.dataset.stopAt) { audio.pause(); audio.dataset.stopAt = ""; }
    for (const row of rows()) {
      const [a, b] = span(row); const on = !audio.paused && a !== null && now >= a && now < b;
      row.classList.toggle("vv-now", on); row.style.background = on ? "rgba(250, 204, 21, 0.35)" : "";
      if (on) row.setAttribute("aria-current", "true"); else row.removeAttribute("aria-current");
    }
  }, 250);
}
"""


def rows_for(script: Script, plan: Plan | None, times: dict[int, tuple[float, float]] | None = None) -> list[list]:
    """One row per line: the plan's delivery (neutral defaults where there is none) and its time."""
    plans = delivery.line_plans(plan)
    rows = []
    for line in script.lines:
        p = plans.get(line.index) or LinePlan(line_index=line.index)
        span = (times or {}).get(line.index)
        rows.append([line.index + 1, line.speaker, line.text, p.emotion, p.intensity, p.rate, p.pause_before,
                     p.pause_after, f"{_clock(span[0])}–{_clock(span[1])}" if span else "", p.note])
    return rows


def plan_from(table, script: Script, planned: dict | None = None) -> Plan | None:
    """The edited table back into a validated plan; None when it belongs to another version of the script.

    A row whose emotion and intensity are still the director's (``planned``) keeps the director's
    source and confidence, so a guess stays a guess (performed at its calibrated strength); a changed
    one is the user's, performed in full.
    """
    rows = _rows(table)
    if len(rows) != len(script.lines) or any(r["text"] != line.text for r, line in zip(rows, script.lines)):
        return None  # planned for another version of the script: let the director plan again
    director = delivery.line_plans(Plan.model_validate(planned)) if planned else {}
    lines = []
    for row in rows:
        mine, theirs = _line_plan(row), director.get(row["line"] - 1)
        kept = theirs is not None and (mine.emotion, mine.intensity) == (theirs.emotion, theirs.intensity)
        source = {"emotion_source": theirs.emotion_source, "confidence": theirs.confidence} if kept else \
            {"emotion_source": "user", "confidence": None}
        lines.append(mine.model_copy(update=source).model_dump())
    return load_plan({"planner": "user", "lines": lines}, script)


def line_times(job: Job) -> dict[int, tuple[float, float]]:
    """Where each line lies in the finished programme (seconds), from the same layout the export uses."""
    placed, _ = layout(job)
    times: dict[int, tuple[float, float]] = {}
    for chunk, start in placed:
        for line_index, begin, end in chunk.spans or [(chunk.line_index, 0, chunk.samples)]:
            a, b = (start + begin) / SAMPLE_RATE, (start + end) / SAMPLE_RATE
            old = times.get(line_index)
            times[line_index] = (min(a, old[0]), max(b, old[1])) if old else (a, b)
    return times


def of_job(service: JobService, job_id: str):
    """The transcript of a finished (or partly rendered) job, with each line's time."""
    if not job_id:
        return gr.skip(), gr.skip()
    try:
        service.info(job_id)  # checks the id's form and that the job exists
        job = Job.open(service.root / job_id)
    except VibeVoiceError:
        return gr.skip(), gr.skip()
    plan = job.manifest.plan
    return rows_for(job.script, plan, line_times(job)), plan.model_dump(mode="json") if plan else None


def select(table, event: gr.SelectData):
    """Clicking (or Enter on) a cell chooses its line: its number and time, for ▶, ♪ and ⟳."""
    rows = _rows(table)
    index = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
    if not rows or not 0 <= index < len(rows):
        return 0, "", "Choose a line in the transcript."
    row = rows[index]
    return row["line"], row["time"], f"Line {row['line']} ({html.escape(row['speaker'])}) chosen."


def audition(service: JobService, job_id: str, table, line: int):
    """That one line, spoken with the row's edited delivery, without touching the job."""
    job, row = _job_row(service, job_id, table, line)
    if job.renderer.whole_script:
        raise gr.Error("This engine speaks the whole script as one take: re-render the job to hear the change.")
    script_line = job.script.lines[row["line"] - 1]
    voice = job.manifest.voices[script_line.speaker]
    wanted = delivery.line_delivery(voice, job.manifest.settings.speed, _line_plan(row))
    emotion = wanted.emotion if wanted.emotion in voice.emotions else None
    segment = Segment(script_line.index, script_line.speaker, script_line.text, script_line.language,
                      delivery.LineDelivery(speed=wanted.speed, emotion=emotion))
    audio = job.renderer.engine(voice).synthesize([segment], {script_line.speaker: voice}).audio
    return SAMPLE_RATE, np.asarray(audio, np.float32)


def rerender(service: JobService, job_id: str, table, line: int):
    """Re-render the chosen line with its row's delivery; every other line keeps its audio."""
    job, row = _job_row(service, job_id, table, line)
    p = _line_plan(row)
    try:
        info = service.rerender_line(job_id, row["line"] - 1, rate=p.rate, emotion=p.emotion, intensity=p.intensity,
                                     pause_before=p.pause_before, pause_after=p.pause_after)
    except VibeVoiceError as error:
        raise gr.Error(str(error)) from None
    return info.id, status_html(info)


def direct(text: str, planner: str, hints: dict[str, str]):
    """The director's plan as the transcript, before anything is rendered."""
    try:
        script = parse_script(text)
    except ScriptError as error:
        raise gr.Error(html.escape(str(error)).replace("\n", "<br>"), title="Fix the script first") from None
    plan = delivery.direct(script, planner if planner != "none" else "rules", hints)
    fell_back = f" ({len(plan.fallbacks)} line(s) fell back to rules)" if plan.fallbacks else ""
    note = f"Planned by **{plan.planner}**{fell_back}. Edit emotion, intensity, pace or pauses, then Generate."
    return rows_for(script, plan), note, plan.model_dump(mode="json")


def times_json(table) -> str:
    return json.dumps([r["time"] for r in _rows(table)])


def _job_row(service: JobService, job_id: str, table, line: int) -> tuple[Job, dict]:
    if not job_id:
        raise gr.Error("Generate or open a job first.")
    rows = {r["line"]: r for r in _rows(table)}
    if not line or int(line) not in rows:
        raise gr.Error("Choose a line in the transcript first (click any of its cells).")
    try:
        service.info(job_id)
        return Job.open(service.root / job_id), rows[int(line)]
    except VibeVoiceError as error:
        raise gr.Error(str(error)) from None


def _rows(table) -> list[dict]:
    """The table's rows by column name (Gradio hands a DataFrame, or lists from API clients)."""
    if hasattr(table, "to_dict"):
        records = table.to_dict("records")
    else:
        data = (table or {}).get("data", []) if isinstance(table, dict) else (table or [])
        headers = (table or {}).get("headers") if isinstance(table, dict) else None
        records = [dict(zip(headers or COLUMNS, r)) for r in data]
    out = []
    for r in records:
        number = _number(r.get("line"))
        if number is None:
            continue
        out.append({**{name: r.get(name) for name in COLUMNS}, "line": int(number),
                    "speaker": str(r.get("speaker") or ""), "text": str(r.get("text") or ""),
                    "time": str(r.get("time") or "")})
    return out


def _line_plan(row: dict) -> LinePlan:
    """A row's delivery as a validated ``LinePlan`` (out-of-range edits are refused with the field's rule)."""
    try:
        return LinePlan(line_index=row["line"] - 1, emotion=str(row.get("emotion") or "neutral"),
                        intensity=_number(row.get("intensity"), 0.5), rate=_number(row.get("pace"), 1.0),
                        pause_before=_number(row.get("pause before")), pause_after=_number(row.get("pause after")),
                        note=str(row.get("note") or "")[:200])
    except ValueError as error:
        raise gr.Error(f"line {row['line']}: {error.errors()[0]['loc'][0]}: {error.errors()[0]['msg']}"
                       if hasattr(error, "errors") else str(error)) from None


def _number(value, default=None):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return default if number != number else number  # NaN from an emptied cell


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"

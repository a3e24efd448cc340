"""The job's status block on the page (progress, ETA, current line, messages and notes), as HTML."""

from __future__ import annotations

import html

from vibevoice.audio import clock
from vibevoice.job.service import JobInfo


def status_html(info: JobInfo) -> str:
    percent = 100 * info.done / max(1, info.total)
    eta = f" · ETA {clock(info.eta_seconds)}" if info.eta_seconds is not None else ""
    line = f" · line {info.current_line + 1}" if info.current_line is not None else ""
    message = f"<div class='vv-message'>{html.escape(info.message)}</div>" if info.message else ""
    message += "".join(f"<div class='vv-note'>{html.escape(note)}</div>" for note in info.notes)
    return (f"<div id='vv-progress' data-status='{info.status}' data-job='{info.id}'>"
            f"<progress max='100' value='{percent:.0f}' style='width:100%'></progress>"
            f"<div>{info.status} · {info.done}/{info.total} chunks · {info.audio_seconds:.1f} s of audio{eta}{line}"
            f" · job <code>{info.id}</code></div>{message}</div>")

"""``vibevoice voices``, ``clone`` and ``audit``: the voice templates, cloning with consent, the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .. import audit
from ..cloning import clone_voice
from ..errors import BadInput
from ..voices import CONSENT_STATEMENT, load_templates
from .common import fail, out


def list_voices() -> None:
    """List voice templates (presets and your saved ones)."""
    table = Table("id", "name", "engine", "languages", "description")
    for t in load_templates().values():
        table.add_row(t.id, t.name, t.engine, ",".join(t.languages), t.description)
    out.print(table)


def clone(
    name: Annotated[str, typer.Argument(help="the speaker's name (becomes part of the voice id)")],
    clip: Annotated[Path, typer.Argument(help="reference recording: WAV, FLAC, MP3 or OGG, 3 s or more of speech")],
    consent: Annotated[bool, typer.Option("--consent", help=f"required: {CONSENT_STATEMENT}")] = False,
) -> None:
    """Save CLIP as a cloning voice for the VibeVoice engine (needs --consent)."""
    try:
        template = clone_voice(name, clip.read_bytes(), clip.suffix, consent, audit.local_actor())
    except OSError as error:
        fail(f"cannot read {clip}: {error.strerror}")
    except BadInput as error:
        fail(str(error))
    out.print(f"Saved voice [bold]{template.id}[/bold] (consent recorded {template.spec.consent.confirmed_at}); "
              f"use it with --engine vibevoice --voice '{name}={template.id}'")


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

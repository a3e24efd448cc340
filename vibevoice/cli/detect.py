"""``vibevoice detect FILE…``: does a file carry this tool's inaudible watermark, and what do its tags say?"""

from __future__ import annotations

import json as json_lib
from pathlib import Path
from typing import Annotated

import typer

from .. import watermark


def detect_command(
    files: Annotated[list[Path], typer.Argument(help="audio files: WAV, FLAC or MP3, any rate, mono or stereo")],
    json: Annotated[bool, typer.Option("--json", help="print one JSON object per file")] = False,
) -> None:
    """Say whether each FILE carries this tool's inaudible watermark (and show its provenance tags).

    Exit code 0 when every file does, 1 when some do not, 2 when a file cannot be read.
    """
    missing = unreadable = False
    for path in files:
        try:
            detection = watermark.detect_file(path)
        except watermark.UnreadableAudio as error:
            unreadable = True
            typer.echo(json_lib.dumps({"path": str(path), "error": str(error)}) if json else f"error: {error}",
                       err=not json)
            continue
        missing |= not detection.found
        typer.echo(detection.model_dump_json() if json else _describe(detection))
    if unreadable or missing:
        raise typer.Exit(2 if unreadable else 1)


def _describe(d: watermark.Detection) -> str:
    verdict = "watermark found" if d.found else "no watermark"
    tags = d.tags.get("COMMENT") or d.tags.get("INFO_COMMENT") or \
        ("AI-generated speech" if d.tags.get("AI_GENERATED") else "")
    return (f"{d.path}: {verdict} (z = {d.score:.1f}, threshold {d.threshold}; "
            f"{d.marked_seconds:.0f} of {d.seconds:.0f} s in marked windows; {d.method})"
            + (f"\n  tags: {tags}" if tags else "\n  tags: none (stripped, or not from this tool)"))

"""``vibevoice qa JOB_DIR``: score a finished job (words, voices, quality, loudness, seams).

Prints a table per line and a summary per speaker, or the whole report as JSON with ``--json`` (for
scripts and CI). A directory without a finished job is an input error (exit 2), as is a missing
``qa`` extra; the message says what to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import VibeVoiceError
from ..qa.report import METRICS, JobReport, number, percent, score_job


def qa_command(
    job_dir: Annotated[Path, typer.Argument(help="job directory (the --job-dir of `vibevoice render`)")],
    json_out: Annotated[bool, typer.Option("--json", help="print the report as JSON instead of tables")] = False,
    metric: Annotated[list[str] | None, typer.Option(
        "--metric", "-m", help=f"only these metrics (repeatable): {', '.join(METRICS)}")] = None,
    markdown: Annotated[Path | None, typer.Option(help="also write the report as Markdown to this file")] = None,
    threads: Annotated[int, typer.Option(min=1, max=16, envvar="VIBEVOICE_QA_THREADS",
                                         help="CPU threads for speech recognition")] = 2,
) -> None:
    """Score the rendered job in JOB_DIR: WER/CER, speaker attribution and drift, MOS, loudness, seams."""
    out, err = Console(), Console(stderr=True, soft_wrap=True)
    os.environ["VIBEVOICE_QA_THREADS"] = str(threads)
    columns = [TextColumn("scoring {task.fields[metric]}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn()]
    try:
        with Progress(*columns, console=err, transient=True, disable=json_out) as bar:
            task = bar.add_task("qa", total=None, metric="")
            report = score_job(job_dir, tuple(metric or METRICS),
                               progress=lambda name, done, total: bar.update(task, metric=name, completed=done,
                                                                             total=total))
    except VibeVoiceError as error:
        err.print("[red]error:[/red]", escape(str(error)), highlight=False)
        raise typer.Exit(2)
    except ImportError as error:
        err.print(f"[red]error:[/red] quality checks need the 'qa' extra ({escape(str(error))}); "
                  "install it with `./scripts/install.sh qa`", highlight=False)
        raise typer.Exit(2)
    if markdown:
        markdown.write_text(report.to_markdown(), encoding="utf-8")
    if json_out:
        print(report.model_dump_json(indent=1))
        return
    out.print(_lines_table(report))
    out.print(_speakers_table(report))
    for line in report.retakes:
        out.print(f"[cyan]re-rendered:[/cyan] {escape(line)}", highlight=False)
    for seam in report.seams:
        out.print(f"[yellow]seam:[/yellow] {seam.kind} at {seam.time:.2f} s: {escape(seam.detail)}", highlight=False)
    out.print(f"Programme true peak {number(report.true_peak_db)} dBTP; speakers' loudness spread "
              f"{number(report.loudness_spread)} LU; {len(report.seams)} seam problem(s).", highlight=False)


def _lines_table(report: JobReport) -> Table:
    table = Table("#", "speaker", "WER/CER", "closest", "margin", "MOS", "rate", "LUFS", "heard", title="Lines")
    for r in report.lines:
        wrong = r.closest is not None and r.closest != r.speaker
        table.add_row(str(r.source_line), escape(r.speaker), percent(r.error_rate),
                      f"[red]{escape(r.closest)}[/red]" if wrong else escape(r.closest or "–"),
                      number(r.margin), number(r.mos), number(r.rate), number(r.lufs), escape(r.transcript or ""))
    return table


def _speakers_table(report: JobReport) -> Table:
    table = Table("speaker", "voice", "lines", "WER", "CER", "attribution", "min margin", "drift (min)", "MOS",
                  "LUFS", title="Summary")
    for s in [*report.speakers, None]:
        row = s or report.overall
        table.add_row(escape(s.speaker) if s else "all", s.voice if s else "", str(row.lines), percent(row.wer),
                      percent(row.cer), percent(row.attribution_accuracy), number(row.min_margin), number(row.min_drift),
                      number(row.mos), number(row.lufs))
    return table

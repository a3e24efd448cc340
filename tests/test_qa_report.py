"""``score_job`` over a real finished job, its Markdown, and the ``qa`` command's two outputs."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner


def test_score_job_gives_a_row_per_line_and_summaries(rendered_job):
    from vibevoice.qa.report import score_job

    job, _ = rendered_job
    report = score_job(job.dir)
    assert [r.index for r in report.lines] == [ln.index for ln in job.script.lines]
    assert {r.speaker for r in report.lines} == set(job.script.speakers)
    assert all(r.error_rate is not None and r.error_rate <= 0.2 for r in report.lines)
    assert report.overall.attribution_accuracy == 1.0 and report.overall.mean_margin > 0.1
    assert all(3.0 < r.mos <= 5.0 and r.lufs < 0 and r.rate > 1 for r in report.lines)
    assert report.seams == [] and report.true_peak_db <= -0.8
    assert [s.speaker for s in report.speakers] == job.script.speakers
    assert set(report.timings) == {"intelligibility", "speakers", "mos", "loudness", "seams"}
    text = report.to_markdown()
    assert all(ln.text in text for ln in job.script.lines) and "| Alice |" in text


def _app() -> typer.Typer:
    from vibevoice.cli.qa import qa_command

    app = typer.Typer()
    app.command("qa")(qa_command)
    app.callback()(lambda: None)  # keep "qa" a subcommand, as in `vibevoice qa`
    return app


def test_qa_command_prints_json_for_a_finished_job(rendered_job, tmp_path):
    job, _ = rendered_job
    markdown = tmp_path / "qa.md"
    result = CliRunner().invoke(_app(), ["qa", str(job.dir), "--json", "-m", "intelligibility", "-m", "loudness",
                                         "--markdown", str(markdown)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["metrics"] == ["intelligibility", "loudness"] and len(report["lines"]) == len(job.script.lines)
    assert report["lines"][0]["mos"] is None and report["lines"][0]["error_rate"] is not None
    assert markdown.read_text(encoding="utf-8").startswith("## Job")


def test_qa_command_table_and_clear_errors(rendered_job, tmp_path):
    job, _ = rendered_job
    table = CliRunner().invoke(_app(), ["qa", str(job.dir), "-m", "loudness"])
    assert table.exit_code == 0 and "Summary" in table.stdout and "Alice" in table.stdout
    empty = CliRunner().invoke(_app(), ["qa", str(tmp_path)])
    assert empty.exit_code == 2 and "holds no job" in empty.output
    unknown = CliRunner().invoke(_app(), ["qa", str(job.dir), "-m", "vibes"])
    assert unknown.exit_code == 2 and "unknown metric" in unknown.output


def test_seams_and_true_peak_are_read_from_the_exported_file_in_blocks(rendered_job):
    """The report reads the exported WAV piece by piece (a 90-minute programme is never held whole) and
    finds what the in-memory measurement of the assembled programme finds."""
    import soundfile as sf

    from vibevoice.audio import SAMPLE_RATE
    from vibevoice.qa import loudness
    from vibevoice.qa.seams import find_seams, find_seams_streamed, job_joins

    job, outputs = rendered_job
    programme = sf.read(outputs["wav"], dtype="float32")[0]
    programme[SAMPLE_RATE] += 0.4  # a click at a point no join is near: not a seam
    joins, planned = job_joins(job)
    at = joins[1]
    programme[at] += 0.3  # a click right at a join: a seam
    read = lambda lo, hi: programme[lo:hi]  # noqa: E731
    whole = find_seams(programme, joins, planned, SAMPLE_RATE)
    assert [s.kind for s in whole] == ["click"]
    for block in (4096, 1 << 20):
        assert find_seams_streamed(read, programme.size, joins, planned, SAMPLE_RATE, block=block) == whole
        assert loudness.true_peak_db_streamed(read, programme.size, SAMPLE_RATE, block=block) == \
            loudness.true_peak_db(programme, SAMPLE_RATE)

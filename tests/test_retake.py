"""``render --qa``: every take is heard; one with wrong words is re-rendered and both takes are recorded."""

from __future__ import annotations

import json

import soundfile as sf
from conftest import run_cli

from vibevoice.job.runner import Job


def test_failing_take_is_rerendered_and_every_take_recorded(tmp_path):
    script = tmp_path / "s.txt"
    script.write_text("[A] Good morning and welcome to the show.\n"
                      "[B] Zxqv brrtk pflomp gnarsh vlimt qwertzy.\n", "utf-8")
    job_dir = tmp_path / "job"
    result = run_cli("render", str(script), "-o", str(tmp_path / "show.mp3"), "--job-dir", str(job_dir),
                     "--qa", "--retakes", "1")
    assert result.returncode == 0, result.stderr
    clean, garbled = Job.open(job_dir).manifest.chunks
    assert [t.passed for t in clean.takes] == [True] and clean.takes[0].kept
    assert len(garbled.takes) == 2 and not garbled.takes[0].passed
    assert "WER" in garbled.takes[0].reasons[0] and garbled.takes[1].variant != garbled.takes[0].variant
    assert sum(t.kept for t in garbled.takes) == 1
    assert "1 chunk(s) re-rendered" in result.stdout and "line 2:" in result.stdout
    # The recogniser's word times of each kept take are stored and time the subtitles.
    assert clean.words and clean.words[0].start < clean.words[-1].end <= clean.samples / 24_000

    report = run_cli("qa", str(job_dir), "--json", "--metric", "intelligibility")
    assert report.returncode == 0, report.stderr
    scored = json.loads(report.stdout)
    rows = scored["lines"]
    assert len(rows) == 2 and rows[0]["error_rate"] == 0.0 and rows[1]["error_rate"] > 0.25
    assert len(scored["retakes"]) == 1 and scored["retakes"][0].startswith("line 2: WER")


def test_switching_qa_on_hears_finished_chunks_without_rerendering_them(tmp_path):
    from vibevoice.job.model import RenderSettings
    from vibevoice.voices import load_templates

    text, voices = "[A] The weather is lovely today.\n", {"A": load_templates()["deep-male"]}
    job = Job.create(tmp_path / "job", text, voices)
    job.render()
    before = sf.read(tmp_path / "job" / job.manifest.chunks[0].file)[0]
    checked = Job.create(tmp_path / "job", text, voices, RenderSettings(qa=True))
    assert len(checked.pending) == 1  # finished, but never heard
    checked.render()
    (chunk,) = checked.manifest.chunks
    assert [t.passed for t in chunk.takes] == [True] and chunk.words
    assert (sf.read(tmp_path / "job" / chunk.file)[0] == before).all()
    assert Job.create(tmp_path / "job", text, voices, RenderSettings(qa=True)).pending == []

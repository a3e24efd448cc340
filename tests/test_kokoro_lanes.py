"""Kokoro jobs rendered ahead on lanes (issue 16, throughput): the same job as one chunk at a time.

Real renders of short lines. The int8 graph sums exactly, so a chunk rendered on a single-thread lane
is bit-identical to the same chunk rendered on the all-threads session (measured: no sample differs,
bench/bench_kokoro_runtime.py ``--lanes`` prints it too); the tests hold the job to that.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from vibevoice.errors import RenderFailed
from vibevoice.job.runner import Job
from vibevoice.script import parse_script
from vibevoice.voices import BlendPart, KokoroSpec, assign_voices, load_templates

SCRIPT = """\
[Alice] Welcome back.
[Ben] Thanks for having me.
[Alice] Shall we begin?
[Ben] Let us start with the news.
[Alice] It was a quiet week.
"""


def _render(directory, monkeypatch, workers: int, broken: str | None = None) -> Job:
    """The script rendered with ``workers`` lanes; ``broken``'s voice names a style pack this install
    lacks (a voice saved with a newer Kokoro wheel), so each of that speaker's chunks fails."""
    monkeypatch.setenv("VIBEVOICE_KOKORO_WORKERS", str(workers))
    script = parse_script(SCRIPT)
    job = Job.create(directory, SCRIPT, assign_voices(script.speakers, {}, {}, load_templates()))
    if broken:
        voice = job.manifest.voices[broken]
        job.manifest.voices[broken] = voice.model_copy(update={
            "spec": KokoroSpec(blend=[BlendPart(voice="af_from_a_newer_wheel", weight=1.0)]), "emotions": {}})
        job.save()
    try:
        job.render()
    except RenderFailed:
        assert broken, "only the job with a broken voice may fail"
    return job


def _audio(job: Job) -> list[np.ndarray | None]:
    return [job.chunk_audio(c) if c.status == "done" else None for c in job.manifest.chunks]


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    with pytest.MonkeyPatch.context() as env:
        return _render(tmp_path_factory.mktemp("serial"), env, workers=1)


def test_a_job_rendered_on_two_lanes_is_the_serial_job_sample_for_sample(serial, tmp_path, monkeypatch):
    job = _render(tmp_path / "lanes", monkeypatch, workers=2)
    assert job.manifest.status == "rendered"
    assert any(t.name.startswith("kokoro-lane") for t in threading.enumerate())  # not vacuous: lanes ran
    assert [c.key for c in job.manifest.chunks] == [c.key for c in serial.manifest.chunks]
    for ours, theirs in zip(_audio(job), _audio(serial)):
        assert np.array_equal(ours, theirs)
    assert [c.words for c in job.manifest.chunks] == [c.words for c in serial.manifest.chunks]


def test_a_chunk_failing_on_a_lane_fails_alone_and_its_neighbours_are_kept(serial, tmp_path, monkeypatch):
    job = _render(tmp_path / "broken", monkeypatch, workers=2, broken="Ben")
    chunks = job.manifest.chunks
    assert job.manifest.status == "failed" and "2 chunk(s) failed" in job.manifest.message
    assert [c.status for c in chunks] == ["done", "failed", "done", "failed", "done"]
    assert all("af_from_a_newer_wheel" in c.error for c in chunks if c.status == "failed")
    for ours, theirs in zip(_audio(job), _audio(serial)):
        assert ours is None or np.array_equal(ours, theirs)

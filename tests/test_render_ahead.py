"""The first line is heard while the director plans the rest, and the audio is the same either way.

Real jobs: the shipped local director (SmolLM2, in this process) and the embedded Kokoro engine.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vibevoice import paths
from vibevoice.job.runner import Job
from vibevoice.job.service import JobRequest, JobService, prepare
from vibevoice.plan import local_model
from vibevoice.voices import assign_voices, load_templates

SCRIPT = ("[Alice] Welcome back to the show, everyone. Today we talk about novels.\n"
          "[Ben] (laughs) Sure, once it learns to tell stories.\n"
          "[Alice] I read one last week and it made me cry.\n")
# Long enough that the director is still planning when the first clause is rendered.
MANY = "".join(f"[{'Alice' if n % 2 else 'Ben'}] Line number {n} of a long talk, said plainly.\n" for n in range(40))


@pytest.fixture(autouse=True)
def director_here(monkeypatch):
    """The local director in this process (the same planner the child runs), loaded once per session."""
    monkeypatch.setenv("VIBEVOICE_DIRECTOR_PROCESS", "0")
    monkeypatch.setenv("VIBEVOICE_DIRECTOR_IDLE", "600")
    local_model.load(None, "cpu", paths.cache_dir())


def _audio(job: Job) -> list[tuple[str, np.ndarray]]:
    return [(c.key, job.chunk_audio(c)) for c in job.manifest.chunks]


def test_rendering_ahead_keys_and_renders_exactly_what_planning_first_does(tmp_path):
    voices = assign_voices(["Alice", "Ben"], {}, {}, load_templates())
    ahead = Job.create(tmp_path / "ahead", SCRIPT, voices, planner="local")
    ahead.render(ahead=True)  # first: its lines are planned, not found in the plan cache
    first = Job.create(tmp_path / "first", SCRIPT, voices, planner="local")
    first.direct()
    first.render()
    assert ahead.manifest.chunked and ahead.manifest.ahead == 0 and ahead.manifest.plan.cached == []
    assert ahead.manifest.plan.planner == "local" and ahead.manifest.plan.lines == first.manifest.plan.lines
    assert [c.text for c in ahead.manifest.chunks][:2] == ["Welcome back to the show, everyone.", "Today we talk about novels."]
    assert ahead.rendered_here == len(ahead.manifest.chunks), "each chunk rendered once, none twice"
    for (key_a, audio_a), (key_b, audio_b) in zip(_audio(first), _audio(ahead), strict=True):
        assert key_a == key_b and np.array_equal(audio_a, audio_b)


def test_the_stream_plays_the_first_line_before_the_director_has_planned_the_rest(tmp_path):
    service = JobService(tmp_path / "jobs")
    info = service.submit(JobRequest(script=MANY, planner="local"))
    stream = service.stream_pcm(info.id)
    first = next(stream)
    manifest = Job.open(service.root / info.id).manifest
    service.cancel(info.id)
    assert len(first) > 2 * 24000 * 0.3, "a real piece of speech, not the lead-in"
    assert not manifest.chunked and manifest.ahead >= 1 and manifest.chunks[0].status == "done"
    assert len(manifest.plan.lines) < 40, "the director was still planning when the first words were heard"


def test_a_job_cancelled_while_rendering_ahead_resumes_with_what_it_rendered(tmp_path):
    service = JobService(tmp_path / "jobs")
    info = service.submit(JobRequest(script=MANY, planner="local"))
    next(service.stream_pcm(info.id))
    service.cancel(info.id)
    deadline = time.monotonic() + 120
    while service.info(info.id).status != "interrupted" and time.monotonic() < deadline:
        time.sleep(0.05)
    job = Job.open(service.root / info.id)
    rendered = {c.key for c in job.manifest.chunks if c.status == "done"}
    assert rendered and not job.manifest.chunked
    while _director_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    job = prepare(service.root / info.id, JobRequest(script=MANY, planner="local"))
    job.direct()
    assert rendered <= {c.key for c in job.manifest.chunks if c.status == "done"}, "nothing rendered is lost"
    # The cancelled job's director stopped at its next line: the lines it never planned are not in the
    # plan cache (planning on for nobody, it would have cached all 40 before its thread ended).
    assert len(job.manifest.plan.cached) < 40, job.manifest.plan.cached


def _director_running() -> bool:
    return any(t.name == "director" and t.is_alive() for t in threading.enumerate())

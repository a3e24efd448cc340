"""Estimates count what a job pays beyond speech (issue 16); the director's model is let go after planning."""

from __future__ import annotations

from vibevoice import estimate
from vibevoice.engines.base import split_text
from vibevoice.plan import local_model
from vibevoice.script import parse_script
from vibevoice.voices import assign_voices, load_templates


def test_cold_costs_more_than_warm_and_length_scales(monkeypatch, tmp_path):
    monkeypatch.setenv("VIBEVOICE_HOME", str(tmp_path))  # nothing learned yet: the reference constants
    short = parse_script("[A] Hello there, how are you?\n[B] Fine, thanks.\n")
    long = parse_script("[A] Hello there, how are you?\n[B] Fine, thanks.\n" * 20)
    voices = assign_voices(short.speakers, {}, {}, load_templates())
    cold, warm = (estimate.render_seconds(short, voices, "rules", warm=w) for w in (False, True))
    assert cold > warm > short.estimated_seconds() * 0.36
    assert estimate.render_seconds(long, voices, "rules", warm=True) > 15 * warm
    assert estimate.render_seconds(short, voices, "local", warm=True) > warm  # the director costs time
    monkeypatch.setenv("VIBEVOICE_SPEED_FACTOR", "2")
    assert abs(estimate.render_seconds(short, voices, "rules", warm=True) - 2 * warm) < 1e-9


def test_first_sentence_is_its_own_piece():
    text = "Welcome back. " + "This is a long opening line that goes on and on about many things. " * 3
    pieces = split_text(text.strip(), 300, first_chars=90)
    assert pieces[0] == "Welcome back." and " ".join(pieces) == text.strip()
    assert split_text("Short. Line.", 300, first_chars=90) == ["Short. Line."]


def test_release_forgets_loaded_models_but_not_failures(monkeypatch):
    monkeypatch.setattr(local_model, "_LOADED", {("a",): local_model.LoadedModel(None, None, "cpu", "x", "f"),
                                                 ("b",): local_model.ModelUnavailable("no")})
    assert local_model.release() == 1
    assert list(local_model._LOADED) == [("b",)]


def test_a_finished_job_teaches_the_estimate_what_this_machine_takes(monkeypatch, tmp_path):
    """A machine twice as slow as the reference (or shared with other work) is estimated as such after
    one job; the load of a cold engine is taken out of what the render taught."""
    monkeypatch.setenv("VIBEVOICE_HOME", str(tmp_path))
    script = parse_script("[A] Hello there, how are you today?\n[B] Fine, thanks, and you?\n" * 10)
    voices = assign_voices(script.speakers, {}, {}, load_templates())
    before = estimate.render_seconds(script, voices, "rules", warm=True)
    plan, render, export = 0.5, 60.0, 6.0
    estimate.learn(script, voices, "rules", {"kokoro"}, plan, render + estimate.LOAD_SECONDS["kokoro"], export)
    assert (tmp_path / "speed.json").is_file()
    warm = estimate.render_seconds(script, voices, "rules", warm=True)
    assert abs(warm - (plan + render + export)) < 1e-6 and warm != before
    shorter = parse_script("[A] Hello there, how are you today?\n[B] Fine, thanks, and you?\n" * 5)
    assert abs(estimate.render_seconds(shorter, voices, "rules", warm=True) - warm / 2) < 1e-6
    slower = render / (before - plan - export)  # how much slower than the reference it proved
    cold = estimate.render_seconds(script, voices, "rules", warm=False)
    assert cold > warm and abs(cold - warm - estimate.LOAD_SECONDS["kokoro"] * slower) < 0.2 * cold


def test_a_rendered_job_records_its_speed(monkeypatch, tmp_path):
    from vibevoice.job.service import JobRequest, prepare, run

    monkeypatch.setenv("VIBEVOICE_HOME", str(tmp_path))
    job = prepare(tmp_path / "job", JobRequest(script="[A] Good morning, everyone, and welcome.\n"))
    run(job, stems=False)
    learned = estimate._learned()
    assert {"render:kokoro", "export", "reference"} <= set(learned) and all(v > 0 for v in learned.values())
    run(job, stems=False)  # nothing left to render (a resumed job's export): it teaches nothing
    assert estimate._learned() == learned


def test_the_director_is_released_once_idle_and_each_plan_restarts_the_wait(monkeypatch):
    import time

    model = local_model.LoadedModel(None, None, "cpu", "x", "f")
    monkeypatch.setattr(local_model, "_LOADED", {("a",): model})
    local_model.release_after(60)
    assert list(local_model._LOADED) == [("a",)] and len(local_model._IDLE) == 1  # kept for the next job
    local_model.release_after(0.05)  # a later plan restarts the wait: one timer, the new one
    assert len(local_model._IDLE) == 1
    deadline = time.monotonic() + 30
    while local_model._LOADED and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not local_model._LOADED
    monkeypatch.setattr(local_model, "_LOADED", {("a",): model})
    local_model.release_after(0)  # 0: at once, nothing left pending
    assert not local_model._LOADED and not local_model._IDLE

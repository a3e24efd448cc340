"""The one job flow (prepare → direct → render → export) and how its failures are reported.

Real jobs on the embedded engine, in-process through the same service the page and the API use, and
through the real server for the HTTP side.
"""

from __future__ import annotations

import json
import time

from conftest import run_cli
from test_api import _http

from vibevoice import delivery
from vibevoice.errors import BadInput, Cancelled, RenderFailed
from vibevoice.job.model import ACTIVE
from vibevoice.job.service import JobRequest, JobService, prepare, run
from vibevoice.plan.schema import LinePlan, Plan
from vibevoice.script import parse_script
from vibevoice.voices import load_templates

LONG = "\n".join(f"[A] This is sentence number {n} of a script long enough to keep one worker busy."
                 for n in range(1, 9)) + "\n"
SHORT = "[B] A short line that waits for its turn.\n"


def _wait(service: JobService, job_id: str, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while (info := service.info(job_id)).status in ACTIVE and time.monotonic() < deadline:
        time.sleep(0.2)
    return info


def test_a_failed_export_marks_the_job_failed_with_the_reason(tmp_path):
    service = JobService(tmp_path / "jobs")
    info = service.submit(JobRequest(script=SHORT, planner="none"))
    (service.root / info.id / "out").write_text("a file where the output folder should be")  # export cannot write
    info = _wait(service, info.id)
    assert info.status == "failed" and "export failed" in info.message
    assert info.done == info.total == 1, "the rendered chunk is kept for a resume"


def test_the_cli_says_when_export_fails_and_keeps_the_render(tmp_path):
    script = tmp_path / "short.txt"
    script.write_text(SHORT)
    (tmp_path / "blocker").write_text("not a folder")
    result = run_cli("render", str(script), "-o", str(tmp_path / "blocker" / "out.mp3"),
                     "--job-dir", str(tmp_path / "job"), "--planner", "none")
    assert result.returncode == 1 and "export failed" in result.stderr and "--resume" in result.stderr
    manifest = json.loads((tmp_path / "job" / "job.json").read_text())
    assert manifest["status"] == "failed" and manifest["chunks"][0]["status"] == "done"


def test_cancelling_a_queued_job_keeps_it_from_rendering_until_resumed(tmp_path):
    service = JobService(tmp_path / "jobs", workers=1)
    busy = service.submit(JobRequest(script=LONG, planner="none"))
    waiting = service.submit(JobRequest(script=SHORT, planner="none"))
    cancelled = service.cancel(waiting.id)
    assert cancelled.status == "interrupted" and "cancelled" in cancelled.message
    assert _wait(service, busy.id).status == "done"
    time.sleep(1.0)  # the worker has dequeued the cancelled job by now, and must have left it alone
    untouched = service.info(waiting.id)
    assert untouched.status == "interrupted" and untouched.done == 0
    service.resume(waiting.id)
    assert _wait(service, waiting.id).status == "done"


def test_cancelling_a_running_job_stops_it_between_chunks(tmp_path):
    service = JobService(tmp_path / "jobs", workers=1)
    job_id = service.submit(JobRequest(script=LONG, planner="none")).id
    while service.info(job_id).done == 0:
        time.sleep(0.05)
    service.cancel(job_id)
    info = _wait(service, job_id)
    assert info.status == "interrupted" and info.message.startswith("cancelled") and 0 < info.done < info.total
    service.resume(job_id)
    assert _wait(service, job_id).status == "done"


def test_the_stop_event_cancels_a_render_run_in_the_callers_thread(tmp_path):
    job = prepare(tmp_path / "job", JobRequest(script=LONG, planner="none"))
    stop = __import__("threading").Event()
    stop.set()
    try:
        run(job, stop=stop)
    except Cancelled:
        pass
    else:
        raise AssertionError("a set stop event must cancel the render")
    assert job.manifest.status == "interrupted"


def test_a_job_is_planned_once_and_created_once(tmp_path, monkeypatch):
    calls = []
    real_direct = delivery.direct
    monkeypatch.setattr(delivery, "direct", lambda *a, **k: calls.append(a[1]) or real_direct(*a, **k))
    job = prepare(tmp_path / "job", JobRequest(script="[A] Hello there!\n[B] Are you sure?\n", planner="rules"))
    assert not job.manifest.chunked and job.manifest.planner == "rules" and calls == []
    run(job)
    assert calls == ["rules"] and job.manifest.status == "done"
    assert job.manifest.plan.planner == "rules" and job.manifest.planner is None


def test_unknown_settings_are_refused_by_name(tmp_path):
    try:
        JobRequest.model_validate({"script": SHORT, "settings": {"sped": 1.2}})
    except ValueError as error:
        assert "sped" in str(error)
    else:
        raise AssertionError("a misspelt setting must be refused")


def test_delivery_an_engine_cannot_perform_is_reported_once_per_kind():
    script = parse_script("".join(f"[A] Line {n}.\n" for n in range(30)))
    voice = load_templates()["deep-male"]
    plan = Plan(planner="user", lines=[LinePlan(line_index=i, rate=1.2, pause_after=1.0, emotion="sad")
                                       for i in range(30)])
    speakers = {line.index: line.speaker for line in script.lines}
    whole_script = delivery.unsupported(plan, {"A": voice}, speakers, {"A": frozenset()})
    assert len(whole_script) == 3, whole_script  # emotion, pace and pauses: one note each, not 90
    assert any("pace" in n for n in whole_script) and any("pauses" in n for n in whole_script)
    assert all("and 18 more" in n for n in whole_script)
    line_by_line = delivery.unsupported(plan, {"A": voice}, speakers,
                                        {"A": frozenset({"rate"}) | delivery.TIMELINE_FIELDS})
    assert len(line_by_line) == 1 and "emotion 'sad'" in line_by_line[0]


def test_the_vibevoice_engine_declares_that_it_performs_no_plan_field():
    from vibevoice.engines.vibevoice.engine import VibeVoiceEngine

    assert VibeVoiceEngine.capabilities.plan_fields == frozenset()


def test_an_internal_error_is_a_500_with_an_id_not_a_client_mistake(server):
    broken = server.home / "jobs" / "0123456789ab"
    broken.mkdir(parents=True)
    (broken / "job.json").write_text("{ this manifest was damaged")
    status, body = _http(server, "GET", "/v1/jobs/0123456789ab")
    detail = json.loads(body)
    assert status == 500 and detail["error_id"] in detail["detail"] and "bug" in detail["detail"]
    status, _ = _http(server, "GET", "/v1/jobs")
    assert status == 200, "one damaged folder must not break the job list"


def test_errors_of_the_family_map_to_their_statuses(server):
    assert _http(server, "GET", "/v1/jobs/ffffffffffff")[0] == 404
    assert _http(server, "POST", "/v1/jobs", {"script": "[A] Hi.\n", "voices": {"A": "no-such-voice"}})[0] == 422
    assert issubclass(BadInput, ValueError) and issubclass(RenderFailed, RuntimeError)

"""The HTTP API with the official clients: openai for speech, plain HTTP for jobs, gradio_client."""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request

import numpy as np
import openai
import pytest
import soundfile as sf
from conftest import Server

DIALOGUE = "[Host] Welcome to the show.\n[Guest] Thanks, it is great to be here.\n"


def _http(server, method: str, path: str, body: dict | bytes | None = None) -> tuple[int, bytes]:
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(server.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _wait_done(server, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, body = _http(server, "GET", f"/v1/jobs/{job_id}")
        info = json.loads(body)
        if info["status"] not in ("queued", "rendering", "rendered"):
            return info
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="not-needed")


def test_openai_client_speech_wav(client):
    response = client.audio.speech.create(model="kokoro", voice="onyx", input="Hello from the speech API.",
                                          response_format="wav")
    audio, rate = sf.read(io.BytesIO(response.content))
    assert rate == 24_000 and 1.0 < audio.shape[0] / rate < 6.0
    assert np.sqrt(np.mean(audio**2)) > 0.01


def test_openai_client_streams_mp3_with_a_multi_speaker_script(client):
    with client.audio.speech.with_streaming_response.create(
            model="kokoro", voice="nova", input=DIALOGUE, response_format="mp3",
            extra_body={"voices": {"Host": "deep-male", "Guest": "bright-female"}}) as response:
        data = b"".join(response.iter_bytes())
    audio, rate = sf.read(io.BytesIO(data))
    assert rate == 24_000 and audio.shape[0] / rate > 2.5  # both lines were spoken


@pytest.mark.parametrize("fmt", ["flac", "opus", "pcm"])
def test_openai_formats(client, fmt):
    content = client.audio.speech.create(model="kokoro", voice="deep-male", input="Short.", response_format=fmt).content
    if fmt == "pcm":
        assert len(content) % 2 == 0 and len(content) > 24_000  # 16-bit mono at 24 kHz, > 0.5 s
    else:
        audio, rate = sf.read(io.BytesIO(content))
        assert audio.shape[0] / rate > 0.3


def test_job_create_progress_download(server):
    status, body = _http(server, "POST", "/v1/jobs", {"script": DIALOGUE, "voices": {"Guest": "warm-female"}})
    assert status == 201, body
    job = json.loads(body)
    assert job["speakers"] == ["Host", "Guest"] and job["voices"]["Guest"] == "warm-female"
    info = _wait_done(server, job["id"])
    assert info["status"] == "done" and info["done"] == info["total"]
    assert {"wav", "mp3", "srt", "vtt", "stem:Host", "stem:Guest"} <= set(info["outputs"])
    status, mp3 = _http(server, "GET", f"/v1/jobs/{job['id']}/files/mp3")
    assert status == 200 and sf.read(io.BytesIO(mp3))[0].shape[0] > 24_000 * 2
    status, srt = _http(server, "GET", f"/v1/jobs/{job['id']}/files/srt")
    assert status == 200 and b"[Guest] Thanks, it is great to be here." in srt
    status, listing = _http(server, "GET", "/v1/jobs")
    assert job["id"] in [j["id"] for j in json.loads(listing)]


def test_bad_script_is_a_422_with_line_numbers(server):
    status, body = _http(server, "POST", "/v1/jobs", {"script": "[A] Hi.\n[] nobody\n"})
    assert status == 422
    problems = json.loads(body)["problems"]
    assert problems[0]["line"] == 2 and "empty speaker tag" in problems[0]["message"]


def test_unknown_voice_is_a_422(server):
    status, body = _http(server, "POST", "/v1/jobs", {"script": DIALOGUE, "voices": {"Host": "no-such-voice"}})
    assert status == 422 and b"unknown voice" in body


def test_oversized_body_is_refused(server):
    status, body = _http(server, "POST", "/v1/jobs", json.dumps({"script": "[A] " + "x" * 10_000_000}).encode())
    assert status == 413 and b"bytes" in body


@pytest.mark.parametrize("path", ["/v1/jobs/..%2F..%2Fetc/files/wav", "/v1/jobs/../../etc/passwd",
                                  "/v1/jobs/0123456789ab/files/..%2F..%2Fjob.json", "/v1/jobs/%2Fetc%2Fpasswd"])
def test_paths_cannot_escape_the_jobs_directory(server, path):
    status, body = _http(server, "GET", path)
    assert status == 404
    assert b"root:" not in body


def test_gradio_client_checks_and_renders(server):
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    problems, estimate, *_ = client.predict("[A] Hello.\n[B] Hi there.\n", api_name="/validate")
    assert problems == "" and "2 speaker(s)" in estimate
    problems, *_ = client.predict("[A] Hello.\n[]\n", api_name="/validate")
    assert "line 2" in problems
    empty_row = ["", None, "", None]
    job_id, _ = client.predict("[A] Hello from Gradio.\n", "Embedded (Kokoro, offline)", "", 1.0, 0, 1.3, 10, 0.45,
                               False, "rules", "Flag only", "At the end", False, {"headers": [], "data": []},
                               "A", "bright-female", "calm", None, *empty_row * 3,
                               api_name="/start_job")
    info = _wait_done(server, job_id)
    assert info["status"] == "done" and info["voices"] == {"A": "bright-female"}
    # The page's responsible-use settings reached the job: a spoken notice at the end, and an audit entry.
    _, srt = _http(server, "GET", f"/v1/jobs/{job_id}/files/srt")
    assert srt.decode().strip().endswith("[Notice] This audio was generated with artificial intelligence.")
    created = [e for e in audit_events(server.home) if e["event"] == "job.created" and e["job_id"] == job_id]
    assert created and created[0]["actor"].startswith("page:127.0.0.1")


def audit_events(home):
    path = home / "audit.jsonl"
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()] if path.exists() else []


def test_server_restart_mid_job_then_resume(tmp_path):
    server = Server(tmp_path / "home").start()
    long_script = "".join(f"[{'AB'[i % 2]}] This is line number {i + 1} of a longer script, spoken slowly.\n"
                          for i in range(12))
    _, body = _http(server, "POST", "/v1/jobs", {"script": long_script})
    job_id = json.loads(body)["id"]
    deadline = time.monotonic() + 300
    while json.loads(_http(server, "GET", f"/v1/jobs/{job_id}")[1])["done"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    server.kill()  # as hard as a crash: no chance to clean up
    server.start()
    info = json.loads(_http(server, "GET", f"/v1/jobs/{job_id}")[1])
    assert info["status"] == "interrupted" and 2 <= info["done"] < info["total"]
    status, _ = _http(server, "POST", f"/v1/jobs/{job_id}/resume")
    assert status == 200
    info = _wait_done(server, job_id)
    server.kill()
    assert info["status"] == "done" and info["done"] == info["total"] == 13  # 12 lines; the first clause is a chunk


def test_an_update_keeps_the_users_direction_of_unchanged_lines_unless_replan(server):
    """PUT with one line edited: the line the user directed keeps its emotion (and its audio); with
    ``replan`` the director plans every line again."""
    script = "[Host] Welcome to the show.\n[Guest] Thanks, it is great to be here.\n[Host] Let us begin.\n"
    _, body = _http(server, "POST", "/v1/jobs", {"script": script, "planner": "rules"})
    job_id = json.loads(body)["id"]
    assert _wait_done(server, job_id)["status"] == "done"
    assert _http(server, "POST", f"/v1/jobs/{job_id}/lines/1/rerender", {"emotion": "sad"})[0] == 200
    assert _wait_done(server, job_id)["status"] == "done"
    manifest = server.home / "jobs" / job_id / "job.json"

    def line_one() -> tuple[str, str]:
        m = json.loads(manifest.read_text())
        return m["plan"]["lines"][0]["emotion"], next(c["key"] for c in m["chunks"] if c["line_index"] == 0)

    directed = line_one()
    assert directed[0] == "sad"
    edited = script.replace("Let us begin.", "Let us begin, then.")
    assert _http(server, "PUT", f"/v1/jobs/{job_id}", {"script": edited, "planner": "rules"})[0] == 200
    assert _wait_done(server, job_id)["status"] == "done"
    assert line_one() == directed
    status, body = _http(server, "PUT", f"/v1/jobs/{job_id}", {"script": edited, "planner": "rules", "replan": True})
    assert status == 200, body
    assert _wait_done(server, job_id)["status"] == "done"
    assert line_one()[0] == "neutral" and line_one()[1] != directed[1]


def test_rerender_one_line_slower_reassembles(server):
    _, body = _http(server, "POST", "/v1/jobs", {"script": DIALOGUE})
    job_id = json.loads(body)["id"]
    assert _wait_done(server, job_id)["status"] == "done"
    manifest = server.home / "jobs" / job_id / "job.json"
    before = {c["line_index"]: c["key"] for c in json.loads(manifest.read_text())["chunks"]}
    wav_before = sf.info(io.BytesIO(_http(server, "GET", f"/v1/jobs/{job_id}/files/wav")[1])).duration

    status, body = _http(server, "POST", f"/v1/jobs/{job_id}/lines/2/rerender", {"rate": 0.75})
    assert status == 200, body
    assert _wait_done(server, job_id)["status"] == "done"
    after = {c["line_index"]: c["key"] for c in json.loads(manifest.read_text())["chunks"]}
    assert after[0] == before[0] and after[1] != before[1]  # only line 2 was rendered again
    wav_after = sf.info(io.BytesIO(_http(server, "GET", f"/v1/jobs/{job_id}/files/wav")[1])).duration
    assert wav_after > wav_before + 0.3

    status, body = _http(server, "POST", f"/v1/jobs/{job_id}/lines/9/rerender", {"rate": 0.9})
    assert status == 422 and b"line 9 does not exist" in body


def test_job_stream_as_pcm_is_the_finished_timeline_before_loudness(server):
    """``/stream?format=pcm``: 16-bit mono at the announced rate, sample for sample the programme the
    finished WAV is made of (the stream's fixed preview gain instead of the measured loudness gain),
    ending half a second after the last line where the finished file has its own tail."""
    from vibevoice.export import Timeline
    from vibevoice.job.runner import Job
    from vibevoice.job.service import PREVIEW_GAIN

    status, body = _http(server, "POST", "/v1/jobs", {"script": DIALOGUE})
    job_id = json.loads(body)["id"]
    with urllib.request.urlopen(f"{server.url}/v1/jobs/{job_id}/stream?format=pcm", timeout=300) as response:
        rate, kind = int(response.headers["X-Sample-Rate"]), response.headers["Content-Type"]
        stream = np.frombuffer(response.read(), "<i2").astype(np.float32) / 32768
    assert _wait_done(server, job_id)["status"] == "done"
    job = Job.open(server.home / "jobs" / job_id)
    finished, finished_rate = sf.read(job.manifest.outputs["wav"], dtype="float32")
    assert kind == "audio/pcm" and rate == finished_rate == 24_000
    timeline = Timeline(job)
    last, start = timeline.placed[-1]
    end = start + last.samples
    assert stream.size == end + rate // 2 and finished.size == timeline.total > end
    expected = np.clip(timeline.read(0, end) * PREVIEW_GAIN, -1, 32767 / 32768)
    assert np.abs(stream[:end] - expected).max() < 2 / 32768  # 16-bit rounding only
    assert not stream[end:].any()
    assert np.corrcoef(stream[:end], finished[:end])[0, 1] > 0.98  # the same audio, at the final loudness


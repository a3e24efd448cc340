"""Safe to leave running: each finding of the security review, tried against the real server over HTTP.

The shared server listens on loopback without a token (today's default); the token tests start their
own. Every request goes to 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import io
import json
import time

import httpx
import numpy as np
import pytest
import soundfile as sf
from conftest import Server
from test_api import _http, _wait_done
from vibevoice_tiny import noise_clip

LONG = "".join(f"[A] Line number {n} of a script that takes a while to render on two cores.\n" for n in range(12))


def _raw(server, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    connection.request(method, path, body=body or None, headers={"Content-Type": "application/json",
                                                                 **(headers or {})})
    response = connection.getresponse()
    return response.status, response.read()


def _chunked(server, path: str, pieces, content_type: str = "application/json") -> tuple[int, bytes]:
    """A body sent as ``Transfer-Encoding: chunked`` with no length at all."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    connection.putrequest("POST", path)
    connection.putheader("Transfer-Encoding", "chunked")
    connection.putheader("Content-Type", content_type)
    connection.endheaders()
    try:
        for piece in pieces:
            connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        connection.send(b"0\r\n\r\n")
    except OSError:
        pass  # the server may stop reading once the limit is passed; its answer is what counts
    response = connection.getresponse()
    return response.status, response.read()


def _log_since(server, offset: int) -> str:
    return server.log.read_text(errors="replace")[offset:]


def _rendering(server, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = json.loads(_http(server, "GET", f"/v1/jobs/{job_id}")[1])
        if info["status"] == "rendering" and info["done"] >= 1:
            return info
        time.sleep(0.1)
    raise AssertionError("the job never started rendering")


# -- exposure ----------------------------------------------------------------------------------------

def test_the_page_endpoint_cannot_read_server_files(server):
    row = ["A", "bright-female", "", {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}]
    empty = ["", None, "", None] * 3
    data = ["[A] Hello there.\n", "VibeVoice (local checkpoint)", "", 1.0, 0, 1.3, 10, 0.45, True, "rules",
            "Flag only", "At the end", False, {"headers": [], "data": []}, *row, *empty]
    status, body = _raw(server, "POST", "/gradio_api/call/start_job", json.dumps({"data": data}).encode())
    assert status == 200
    event = json.loads(body)["event_id"]
    status, stream = _raw(server, "GET", f"/gradio_api/call/start_job/{event}")
    assert b"event: error" in stream and b"root:" not in stream
    import tempfile
    from pathlib import Path

    cached = [p for p in (Path(tempfile.gettempdir()) / "gradio").rglob("*") if p.is_file() and p.stat().st_size < 1e6]
    assert not any(b"root:x:0:0" in p.read_bytes() for p in cached), "a server file was copied into Gradio's cache"
    assert not any(t["id"].startswith("clone-a-") for t in json.loads(_http(server, "GET", "/v1/voices")[1]))


def test_model_directories_come_from_the_allow_list_and_are_never_listed(server):
    body = {"script": "[A] Hi.\n", "settings": {"engine": "vibevoice", "model_dir": str(server.home)}}
    status, reply = _http(server, "POST", "/v1/jobs", body)
    assert status == 422 and b"VIBEVOICE_MODEL_DIRS" in reply and b"model_dir" in reply
    assert b"audit.jsonl" not in reply and b"server.log" not in reply  # the home folder's contents


def test_a_chunked_body_is_counted_as_it_arrives(server):
    huge = (b'{"script": "[A] ' if i == 0 else b"x" * 65536 for i in range(160))  # 10 MB, no length
    status, reply = _chunked(server, "/v1/jobs", huge)
    assert status == 413 and len(reply) < 300 and b"xxxx" not in reply


def test_a_declared_length_over_the_limit_is_refused_without_reading_it_all(server):
    status, reply = _raw(server, "POST", "/v1/jobs", b"{}", {"Content-Length": "50000000"})
    assert status == 413 and len(reply) < 300


def test_a_small_request_cannot_make_a_huge_reply(server):
    status, reply = _http(server, "POST", "/v1/scripts/check", {"script": "[" * 390_000})
    detail = json.loads(reply)
    assert status == 422 and len(reply) < 30_000
    assert len(detail["problems"]) == 50 and "more problem" in detail["detail"]


def test_invalid_fields_are_named_and_never_echoed(server):
    status, reply = _http(server, "POST", "/v1/jobs", {"script": "[A] Hi.\n", "title": "t" * 200_000})
    assert status == 422 and b"title" in reply and len(reply) < 2_000


def test_compressed_silence_is_refused_by_its_header_before_decoding(server, tmp_path):
    flac = io.BytesIO()
    sf.write(flac, np.zeros(20 * 60 * 24_000, np.float32), 24_000, format="FLAC")
    assert len(flac.getvalue()) < 2_000_000
    before = _peak_rss(server)
    made = httpx.post(f"{server.url}/v1/voices/clone", data={"name": "Quiet", "consent": "true"},
                      files={"clip": ("long.flac", flac.getvalue(), "audio/flac")}, timeout=60)
    assert made.status_code == 422 and "too long" in made.json()["detail"]
    assert _peak_rss(server) - before < 150 * 2**20, "the clip was expanded before its length was checked"


def _peak_rss(server) -> int:
    status = open(f"/proc/{server.proc.pid}/status").read()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) * 1024


def test_cross_site_writes_and_unknown_hosts_are_refused(server, tmp_path):
    clip = noise_clip(tmp_path / "x.wav", seconds=4).read_bytes()
    crossed = httpx.post(f"{server.url}/v1/voices/clone", data={"name": "Eve", "consent": "true"},
                         files={"clip": ("e.wav", clip, "audio/wav")}, headers={"Origin": "http://evil.example"})
    assert crossed.status_code == 403 and "Origin" in crossed.json()["detail"]
    assert _raw(server, "GET", "/v1/jobs", headers={"Host": "evil.example"})[0] == 421
    same = _raw(server, "POST", "/v1/scripts/check", json.dumps({"script": "[A] Hi.\n"}).encode(),
                {"Origin": server.url})
    assert same[0] == 200


def test_a_forwarded_address_is_not_believed_from_an_untrusted_client(server):
    status, body = _raw(server, "POST", "/v1/jobs", json.dumps({"script": "[A] Forged?\n", "planner": "none"}).encode(),
                        {"X-Forwarded-For": "6.6.6.6"})
    job_id = json.loads(body)["id"]
    events = [json.loads(line) for line in (server.home / "audit.jsonl").read_text().splitlines()]
    (created,) = [e for e in events if e["event"] == "job.created" and e["job_id"] == job_id]
    assert created["actor"] == "api:127.0.0.1"


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("token-home"), env={"VIBEVOICE_TOKEN": "s3cret-token"}).start()
    yield running
    running.kill()


def test_a_token_guards_everything_when_set(locked):
    assert _raw(locked, "GET", "/v1/jobs")[0] == 401
    assert _raw(locked, "GET", "/v1/jobs", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert _raw(locked, "GET", "/v1/jobs", headers={"Authorization": "Bearer s3cret-token"})[0] == 200
    page = httpx.get(locked.url + "/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    wrong = httpx.post(locked.url + "/login", data={"token": "nope"})
    assert wrong.status_code == 401
    login = httpx.post(locked.url + "/login", data={"token": "s3cret-token"}, follow_redirects=False)
    assert login.status_code == 303 and "vibevoice-token" in login.headers["set-cookie"]
    cookies = {"vibevoice-token": "s3cret-token"}
    assert httpx.get(locked.url + "/", cookies=cookies).status_code == 200


def test_the_openai_client_passes_its_api_key_as_the_token(locked):
    from openai import AuthenticationError, OpenAI

    good = OpenAI(base_url=f"{locked.url}/v1", api_key="s3cret-token")
    audio = good.audio.speech.create(model="kokoro", voice="nova", input="Token accepted.", response_format="wav")
    assert sf.info(io.BytesIO(audio.content)).duration > 0.5
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=f"{locked.url}/v1", api_key="unused").audio.speech.create(
            model="kokoro", voice="nova", input="No.", response_format="wav")


def test_off_loopback_a_token_is_generated_and_printed(tmp_path):
    open_to_all = Server(tmp_path / "lan-home", args=("--host", "0.0.0.0")).start()
    try:
        printed = (tmp_path / "lan-home" / "server.out").read_text()
        token = printed.split("Access token (API: Authorization: Bearer …; page: log in): ")[1].split()[0]
        assert _raw(open_to_all, "GET", "/v1/jobs")[0] == 401
        assert _raw(open_to_all, "GET", "/v1/jobs", headers={"Authorization": f"Bearer {token}"})[0] == 200
    finally:
        open_to_all.kill()


# -- lost or wrong data ---------------------------------------------------------------------------------

def test_an_edit_while_rendering_is_refused_not_dropped(server):
    job_id = json.loads(_http(server, "POST", "/v1/jobs", {"script": LONG, "planner": "none"})[1])["id"]
    _rendering(server, job_id)
    status, body = _http(server, "PUT", f"/v1/jobs/{job_id}", {"script": "[A] Something else.\n", "planner": "none"})
    assert status == 409 and b"still rendering" in body
    info = _wait_done(server, job_id)
    assert info["status"] == "done" and info["total"] == 12  # the script it was rendering, whole


def test_deleting_a_running_job_sticks(server):
    job_id = json.loads(_http(server, "POST", "/v1/jobs", {"script": LONG, "planner": "none"})[1])["id"]
    _rendering(server, job_id)
    assert _http(server, "DELETE", f"/v1/jobs/{job_id}")[0] == 204
    time.sleep(2.0)
    assert _http(server, "GET", f"/v1/jobs/{job_id}")[0] == 404
    assert not (server.home / "jobs" / job_id).exists()


def test_deleting_a_job_while_its_stream_is_open_ends_the_stream_quietly(server):
    offset = len(server.log.read_text(errors="replace"))
    job_id = json.loads(_http(server, "POST", "/v1/jobs", {"script": LONG, "planner": "none"})[1])["id"]
    with httpx.stream("GET", f"{server.url}/v1/jobs/{job_id}/stream", timeout=120) as stream:
        chunks = stream.iter_bytes()
        next(chunks)
        assert _http(server, "DELETE", f"/v1/jobs/{job_id}")[0] == 204
        for _ in chunks:
            pass
    time.sleep(0.5)
    assert "Traceback" not in _log_since(server, offset)


def test_stems_of_speakers_whose_names_look_alike_do_not_overwrite_each_other(server):
    script = "[Dr. Lee] Good morning.\n[Dr_ Lee] Good morning to you.\n"
    job_id = json.loads(_http(server, "POST", "/v1/jobs", {"script": script, "planner": "none"})[1])["id"]
    info = _wait_done(server, job_id)
    stems = [k for k in info["outputs"] if k.startswith("stem:")]
    assert len(stems) == 2
    from urllib.parse import quote

    sizes = {k: len(_http(server, "GET", f"/v1/jobs/{job_id}/files/{quote(k)}")[1]) for k in stems}
    paths = {json.loads((server.home / "jobs" / job_id / "job.json").read_text())["outputs"][k] for k in stems}
    assert len(paths) == 2 and all(sizes.values())


def test_clones_whose_names_look_alike_keep_their_own_consent(server, tmp_path):
    clip = noise_clip(tmp_path / "lee.wav", seconds=4).read_bytes()
    made = [httpx.post(f"{server.url}/v1/voices/clone", data={"name": name, "consent": "true"},
                       files={"clip": ("lee.wav", clip, "audio/wav")}, timeout=60).json() for name in ("Dr. Lee", "Dr_ Lee")]
    assert made[0]["id"] != made[1]["id"]
    listed = {v["id"]: v for v in json.loads(_http(server, "GET", "/v1/voices")[1])}
    assert made[0]["id"] in listed and made[1]["id"] in listed


def test_a_clip_name_with_an_absurd_extension_is_not_a_server_error(server, tmp_path):
    clip = noise_clip(tmp_path / "odd.wav", seconds=4).read_bytes()
    made = httpx.post(f"{server.url}/v1/voices/clone", data={"name": "Odd", "consent": "true"},
                      files={"clip": ("odd." + "x" * 300, clip, "audio/wav")}, timeout=60)
    assert made.status_code == 201, made.text


# -- usability ----------------------------------------------------------------------------------------------

def test_the_page_upload_takes_an_ordinary_reference_clip(server, tmp_path):
    wav = io.BytesIO()
    sf.write(wav, np.random.RandomState(1).randn(441_000, 2).astype(np.float32) * 0.1, 44_100, format="WAV")
    assert len(wav.getvalue()) > 1_000_000
    uploaded = httpx.post(f"{server.url}/gradio_api/upload", files={"files": ("ten.wav", wav.getvalue(), "audio/wav")},
                          timeout=60)
    assert uploaded.status_code == 200, uploaded.text


@pytest.mark.parametrize("body, names", [
    ({"script": "[A] Hi \ud800 there.\n"}, [b"line 1", b"column"]),
    ({"script": "[A] Hi.\n", "settings": {"speed": float("nan")}}, [b"settings.speed"]),
    ({"script": "[A] Hi.\n", "settings": {"speed": True}}, [b"settings.speed"]),
    ({"script": "[A] Hi.\n", "settings": {"qa": "yes"}}, [b"settings.qa"]),
    ({"script": "[A] Hi.\n", "settings": {"sped": 1.2}}, [b"settings.sped"]),
    ({"script": "\u200b\u200b\n[A] \u200b\n"}, [b"line 2"]),
    ({"script": "<speak>Hello there.</speak>\n"}, [b"SSML", b"line 1"]),
    ({"script": "[A] Wait [pause 1" + "9" * 400 + "s] now.\n"}, [b"pause", b"column"]),
])
def test_bad_input_is_a_422_that_names_the_field_or_line(server, body, names):
    data = json.dumps(body, allow_nan=True).encode()
    status, reply = _raw(server, "POST", "/v1/jobs", data)
    assert status == 422, reply
    assert all(name in reply for name in names), reply
    assert b"inf-second" not in reply and b"http" not in reply


def test_job_ids_must_be_exactly_the_fixed_form(server):
    assert _http(server, "GET", "/v1/jobs/0123456789ab%0A")[0] == 404
    status, reply = _http(server, "GET", "/v1/jobs/" + "a" * 5000)
    assert status == 404 and len(reply) < 300

"""Cloning needs the speaker's consent, recorded with the voice and every job; the local audit log."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_cli  # noqa: E402
from vibevoice_tiny import noise_clip  # noqa: E402

from vibevoice import audit  # noqa: E402
from vibevoice.cloning import ConsentRequired, clone_voice  # noqa: E402
from vibevoice.job.runner import Job  # noqa: E402
from vibevoice.voices import VoiceTemplate, load_templates  # noqa: E402


def test_cli_clone_requires_consent_and_records_it(tmp_path):
    clip = noise_clip(tmp_path / "jane.wav", seconds=4)
    refused = run_cli("clone", "Jane", str(clip))
    assert refused.returncode == 2 and "consent" in refused.stderr
    assert not any(v.startswith("clone-jane") for v in load_templates())
    saved = run_cli("clone", "Jane", str(clip), "--consent")
    assert saved.returncode == 0, saved.stderr
    (template,) = [t for t in load_templates().values() if t.id.startswith("clone-jane")]
    consent = template.spec.consent
    assert consent.confirmed_by.startswith("local:") and consent.confirmed_at[:4].isdigit()
    assert consent.clip_sha256 == __import__("hashlib").sha256(clip.read_bytes()).hexdigest()
    event = [e for e in audit.read() if e["event"] == "voice.cloned" and e["voice"] == template.id]
    assert event and event[0]["consent"]["clip_sha256"] == consent.clip_sha256


def test_bad_clips_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="too short"):
        clone_voice("Tim", (noise_clip(tmp_path / "short.wav", seconds=0.5)).read_bytes(), ".wav", True, "test")
    with pytest.raises(ValueError, match="cannot be read as audio"):
        clone_voice("Tim", b"not audio at all", ".wav", True, "test")


def test_a_cloned_voice_without_consent_cannot_be_used(tmp_path):
    unconsented = VoiceTemplate(id="clone-x", name="X", engine="vibevoice", languages=["en"],
                                spec={"kind": "clone", "clip": str(noise_clip(tmp_path / "x.wav", seconds=4))})
    with pytest.raises(ConsentRequired, match="speaker 'A' uses the cloned voice 'clone-x'.*no recorded consent"):
        Job.create(tmp_path / "job", "[A] Hello.\n", {"A": unconsented})
    assert not (tmp_path / "job").exists()


def test_api_clone_needs_consent(server, tmp_path):
    clip = noise_clip(tmp_path / "api.wav", seconds=4).read_bytes()
    url = f"{server.url}/v1/voices/clone"
    refused = httpx.post(url, data={"name": "Ann"}, files={"clip": ("ann.wav", clip, "audio/wav")}, timeout=60)
    assert refused.status_code == 422 and "consent" in refused.json()["detail"]
    made = httpx.post(url, data={"name": "Ann", "consent": "true"}, files={"clip": ("ann.wav", clip, "audio/wav")},
                      timeout=60)
    assert made.status_code == 201, made.text
    voice = made.json()
    assert voice["spec"]["consent"]["confirmed_by"].startswith("api:127.0.0.1")
    listed = httpx.get(f"{server.url}/v1/voices", timeout=30).json()
    assert any(v["id"] == voice["id"] and v["spec"]["consent"] for v in listed)


def test_audit_log_follows_a_job_from_creation_to_deletion(server):
    script = {"script": "[A] Audit me, please.\n", "settings": {"content_filter": "block"}}
    job = httpx.post(f"{server.url}/v1/jobs", json=script, timeout=60).json()
    blocked = httpx.post(f"{server.url}/v1/jobs", json={"script": "[A] I will kill you tomorrow.\n"}, timeout=60)
    assert blocked.status_code == 422 and blocked.json()["findings"][0]["category"] == "violent-threat"
    for _ in range(600):
        if httpx.get(f"{server.url}/v1/jobs/{job['id']}", timeout=30).json()["status"] == "done":
            break
        __import__("time").sleep(0.5)
    assert httpx.delete(f"{server.url}/v1/jobs/{job['id']}", timeout=30).status_code == 204
    lines = (server.home / "audit.jsonl").read_text("utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    mine = [e["event"] for e in events if e.get("job_id") == job["id"]]
    assert mine[0] == "job.created" and "job.exported" in mine and mine[-1] == "job.deleted"
    assert any(e["event"] == "job.blocked" and e["actor"].startswith("api:") for e in events)
    created = next(e for e in events if e.get("job_id") == job["id"])
    assert created["script_sha256"] == audit.script_hash(script["script"]) and "Audit me" not in lines[0]
    assert created["voices"]["A"]["voice"] and created["content_filter"] == "block"

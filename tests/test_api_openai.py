"""OpenAI's speech contract, spoken to with the official ``openai`` client against the real server."""

from __future__ import annotations

import base64
import io
import json

import av
import numpy as np
import pytest
import soundfile as sf
from openai import OpenAI
from test_api import _http


@pytest.fixture(scope="module")
def client(server):
    return OpenAI(base_url=f"{server.url}/v1", api_key="unused")


def _jobs_by_input(server, text: str) -> list[dict]:
    found = []
    for manifest in (server.home / "jobs").glob("*/job.json"):
        try:
            data = json.loads(manifest.read_text())
        except ValueError:
            continue  # another test's deliberately damaged job, in the same shared server
        if text in data["script"]:
            found.append(data)
    return found


def test_instructions_reach_the_director_and_change_the_audio(server, client):
    text = "We won the cup today, after forty years of waiting."
    plain = client.audio.speech.create(model="gpt-4o-mini-tts", voice="coral", input=text, response_format="wav")
    cheerful = client.audio.speech.create(model="gpt-4o-mini-tts", voice="coral", input=text, response_format="wav",
                                          instructions="Speak in a cheerful and positive tone.")
    assert plain.content != cheerful.content
    plans = [job["plan"]["lines"][0] for job in _jobs_by_input(server, text) if job.get("plan")]
    assert {p["emotion"] for p in plans} == {"neutral", "happy"}


def test_sse_streams_base64_audio_deltas_then_done(client):
    with client.audio.speech.with_streaming_response.create(
            model="gpt-4o-mini-tts", voice="marin", input="Streaming as events.", response_format="pcm",
            stream_format="sse") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[len("data: "):]) for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1]["type"] == "speech.audio.done" and events[-1]["usage"]["total_tokens"] > 0
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    pcm = np.frombuffer(b"".join(base64.b64decode(e["audio"]) for e in deltas), "<i2")
    assert pcm.size > 24_000 * 0.5 and np.abs(pcm).max() > 1000


def test_every_openai_format_speed_and_voice_is_accepted(client):
    aac = client.audio.speech.create(model="tts-1", voice="cedar", input="An AAC file.", response_format="aac")
    with av.open(io.BytesIO(aac.content)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
        assert sum(frame.samples for frame in container.decode(audio=0)) > 24_000 * 0.3
    slow = client.audio.speech.create(model="tts-1", voice="alloy", input="Slowly now.", speed=0.25,
                                      response_format="wav")
    fast = client.audio.speech.create(model="tts-1", voice="alloy", input="Slowly now.", speed=4.0,
                                      response_format="wav")
    assert sf.info(io.BytesIO(slow.content)).duration > 2 * sf.info(io.BytesIO(fast.content)).duration
    custom = client.audio.speech.create(model="tts-1", voice={"id": "warm-female"}, input="A custom voice id.",
                                        response_format="flac")
    assert sf.info(io.BytesIO(custom.content)).duration > 0.5


def test_models_and_voices_are_listed_like_openai_compatible_servers(server, client):
    ids = [m.id for m in client.models.list()]
    assert "kokoro" in ids and "tts-1" in ids and "gpt-4o-mini-tts" in ids
    voices = json.loads(_http(server, "GET", "/v1/audio/voices")[1])["voices"]
    names = {v["id"] for v in voices}
    assert {"marin", "cedar", "alloy", "deep-male"} <= names
    assert "kokoro" in {m["id"] for m in json.loads(_http(server, "GET", "/v1/audio/models")[1])["models"]}

"""``model="qwen3"`` through the official ``openai`` client against the real server (``python app.py``), on a
tiny random CustomVoice checkpoint placed in the operator's allowed models folder."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from vibevoice.engines.qwen3 import available  # noqa: E402

if not available():
    pytest.skip("the qwen3 extra is not installed (./scripts/install.sh qwen3)", allow_module_level=True)
from conftest import Server  # noqa: E402
from openai import OpenAI  # noqa: E402
from qwen3_tiny import build_tiny_checkpoint  # noqa: E402
from test_api import _http  # noqa: E402

INSTRUCTION = "Speak like a tired night-shift radio host, barely above a murmur."


@pytest.fixture(scope="module")
def qwen3_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("qwen3-api")
    checkpoint = build_tiny_checkpoint(root / "models" / "qwen3-custom", "custom_voice", "1b7")
    server = Server(root / "home", env={"VIBEVOICE_MODEL_DIRS": str(root / "models"), "OMP_NUM_THREADS": "1",
                                        "VIBEVOICE_QWEN3_MODEL_DIR": str(checkpoint)}).start()
    yield server, checkpoint
    server.kill()


def test_openai_client_speaks_with_qwen3_and_its_instructions_verbatim(qwen3_server):
    server, checkpoint = qwen3_server
    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    assert "qwen3" in {m.id for m in client.models.list().data}  # the extra is installed here
    reply = client.audio.speech.create(model="qwen3", voice="Vivian", input="Good evening, night owls.",
                                       instructions=INSTRUCTION, response_format="wav")
    audio, rate = sf.read(io.BytesIO(reply.content))
    assert rate == 24_000 and audio.size > 0.5 * 24_000
    (job,) = [json.loads(p.read_text()) for p in (server.home / "jobs").glob("*/job.json")
              if "night owls" in json.loads(p.read_text())["script"]]
    settings = job["settings"]
    assert settings["engine"] == "qwen3" and Path(settings["model_dir"]) == checkpoint
    assert job["voices"]["Narrator"]["id"] == "qwen3-vivian"
    assert [c["instruct"] for c in job["chunks"]] == [INSTRUCTION]  # exactly as sent, not the director's words


def test_a_model_dir_outside_the_allow_list_is_refused(qwen3_server, tmp_path):
    server, _ = qwen3_server
    elsewhere = build_tiny_checkpoint(tmp_path / "elsewhere", "custom_voice", "1b7")
    status, reply = _http(server, "POST", "/v1/jobs", {"script": "[A] Hi.\n", "voices": {"A": "qwen3-ryan"},
                                                       "settings": {"engine": "qwen3", "model_dir": str(elsewhere)}})
    assert status == 422 and b"VIBEVOICE_MODEL_DIRS" in reply

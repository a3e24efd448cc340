"""Rendering needs no network: every weight comes from an installed wheel."""

from __future__ import annotations

import subprocess
import sys

import soundfile as sf
from conftest import ROOT

GUARD = """
import socket, sys
def refuse(*args, **kwargs):
    raise OSError("network access attempted during an offline render: %r" % (args,))
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from vibevoice.cli import app
sys.argv = ["vibevoice", *sys.argv[1:]]
app()
"""


def test_render_with_network_blocked(tmp_path):
    script = tmp_path / "s.txt"
    script.write_text("[A] Hello from an offline machine.\n【B】你好，这是离线合成。\n")
    env = {"VIBEVOICE_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "0", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", GUARD, "render", str(script), "-o", str(tmp_path / "o.wav")],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "network access attempted" not in result.stderr
    assert sf.info(tmp_path / "o.wav").duration > 2

"""Shared fixtures: an isolated app home per test session and one real rendered job to inspect."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session", autouse=True)
def app_home(tmp_path_factory) -> Path:
    """Keep jobs, saved voices and caches out of the user's real home."""
    home = tmp_path_factory.mktemp("vibevoice-home")
    os.environ["VIBEVOICE_HOME"] = str(home)
    # Renders in these tests use the instant rules director; the LLM directors have their own tests.
    os.environ.setdefault("VIBEVOICE_PLANNER", "rules")
    return home


@pytest.fixture
def one_torch_thread():
    """Tiny models are dominated by thread start-up on a shared 2-core machine; one thread is 15x faster."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_cli(*args: str, env: dict | None = None, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed ``vibevoice`` command the way a user does, in a fresh process."""
    return subprocess.run([sys.executable, "-m", "vibevoice.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=ROOT, **kwargs)


DIALOGUE = """\
[Alice] Welcome back to the show. Do you think AI can write novels?
[Ben] (laughs) Sure, once it learns to tell stories. [pause 600ms] But that is the hard part.
[Alice] {skeptical} Then we will wait a little longer.
"""


@pytest.fixture(scope="session")
def rendered_job(tmp_path_factory):
    """The dialogue above rendered once with the embedded engine, exported with stems."""
    from vibevoice.export import export_job
    from vibevoice.job.runner import Job
    from vibevoice.script import parse_script
    from vibevoice.voices import assign_voices, load_templates

    script = parse_script(DIALOGUE)
    voices = assign_voices(script.speakers, {}, {}, load_templates())
    job = Job.create(tmp_path_factory.mktemp("job"), DIALOGUE, voices)
    job.render()
    out = tmp_path_factory.mktemp("out") / "dialogue.mp3"
    outputs = export_job(job, out, stems=True)
    return job, outputs


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python app.py`` in a subprocess on a free loopback port, as a user starts it."""

    def __init__(self, home: Path, env: dict | None = None, args: tuple[str, ...] = ()) -> None:
        self.home, self.port, self.proc, self.env, self.args = home, free_port(), None, env or {}, args
        self.log = home / "server.log"  # the server's stderr: tests read it for tracebacks

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Server":
        import time
        import urllib.error
        import urllib.request

        env = {**os.environ, "VIBEVOICE_HOME": str(self.home), "VIBEVOICE_PORT": str(self.port), **self.env}
        self.home.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "app.py", *self.args], cwd=ROOT, env=env,
                                     stdout=open(self.home / "server.out", "w"), stderr=open(self.log, "w"), text=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                urllib.request.urlopen(f"{self.url}/v1/health", timeout=2)
                return self
            except urllib.error.HTTPError:
                return self  # it answers (a token may be required)
            except OSError:
                time.sleep(0.3)
        raise AssertionError("the server did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("server-home")).start()
    yield running
    running.kill()

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
    return home


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
    from vibevoice.render import Job
    from vibevoice.script import parse_script
    from vibevoice.voices import assign_voices, load_templates

    script = parse_script(DIALOGUE)
    voices = assign_voices(script.speakers, {}, {}, load_templates())
    job = Job.create(tmp_path_factory.mktemp("job"), DIALOGUE, voices)
    job.render()
    out = tmp_path_factory.mktemp("out") / "dialogue.mp3"
    outputs = export_job(job, out, stems=True)
    return job, outputs

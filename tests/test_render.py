"""The renderer never loses work: SIGKILL, Ctrl-C, a full disk and edits all resume correctly."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import soundfile as sf
from conftest import DIALOGUE, ROOT, run_cli

from vibevoice.job.runner import Job
from vibevoice.script import parse_script
from vibevoice.voices import assign_voices, load_templates

LONGER = DIALOGUE + """\
[Ben] Every story needs a reason to exist, and somebody who cares how it ends.
[Alice] Then let us find out who cares. Stay with us after the break.
[Ben] We will be right back with more questions from our listeners.
"""


def _start_render(script, job_dir, out, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vibevoice.cli", "render", str(script), "-o", str(out),
                             "--job-dir", str(job_dir), *kwargs.pop("args", [])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, **kwargs)


def _wait_for_chunks(job_dir, count: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            chunks = json.loads((job_dir / "job.json").read_text())["chunks"]
        except (FileNotFoundError, json.JSONDecodeError):
            chunks = []
        if sum(c["status"] == "done" for c in chunks) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("render made no progress")


def _interrupt_after(tmp_path, job: str, out: str, chunks: int, sig: int):
    """Start a CLI render of LONGER, send ``sig`` once ``chunks`` are done; return (script, process)."""
    script = tmp_path / "show.txt"
    script.write_text(LONGER)
    # As in a terminal: a test run started in the background of a shell ignores SIGINT, and its children
    # would inherit that (Python then never raises KeyboardInterrupt).
    proc = _start_render(script, tmp_path / job, tmp_path / out,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for_chunks(tmp_path / job, chunks, proc)
    proc.send_signal(sig)
    return script, proc


def test_sigkill_mid_job_then_resume_equals_uninterrupted(tmp_path):
    script, proc = _interrupt_after(tmp_path, "killed", "killed.wav", 2, signal.SIGKILL)
    proc.wait()
    manifest = json.loads((tmp_path / "killed" / "job.json").read_text())
    done_before = sum(c["status"] == "done" for c in manifest["chunks"])
    assert 2 <= done_before < len(manifest["chunks"])

    resumed = run_cli("render", str(script), "-o", str(tmp_path / "killed.wav"),
                      "--job-dir", str(tmp_path / "killed"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"Reusing {done_before} finished chunk(s)" in resumed.stdout

    clean = run_cli("render", str(script), "-o", str(tmp_path / "clean.wav"), "--job-dir", str(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stderr
    a, _ = sf.read(tmp_path / "killed.wav", dtype="int16")
    b, _ = sf.read(tmp_path / "clean.wav", dtype="int16")
    assert a.shape == b.shape
    assert np.array_equal(a, b)


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    _, proc = _interrupt_after(tmp_path, "job", "out.mp3", 1, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "--resume" in stderr
    assert json.loads((tmp_path / "job" / "job.json").read_text())["status"] == "interrupted"


def _limit_file_size(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_full_disk_fails_clearly_and_resumes(tmp_path):
    script = tmp_path / "show.txt"
    script.write_text(DIALOGUE)
    # Files over 60 kB cannot be written: the manifest fits, the first rendered chunk does not.
    proc = _start_render(script, tmp_path / "job", tmp_path / "out.mp3", preexec_fn=_limit_file_size(60_000))
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert "disk is full" in stderr and "--resume" in stderr
    assert not list((tmp_path / "job" / "chunks").glob("*.tmp")), "a torn temporary file was left behind"
    manifest = json.loads((tmp_path / "job" / "job.json").read_text())
    assert manifest["status"] == "failed"

    resumed = run_cli("render", str(script), "-o", str(tmp_path / "out.mp3"), "--job-dir", str(tmp_path / "job"),
                      "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "out.mp3").stat().st_size > 10_000


def test_existing_job_is_not_overwritten_without_resume_or_force(tmp_path):
    script = tmp_path / "show.txt"
    script.write_text("[A] Hello there.\n")
    assert run_cli("render", str(script), "-o", str(tmp_path / "a.mp3"), "--job-dir", str(tmp_path / "j")).returncode == 0
    again = run_cli("render", str(script), "-o", str(tmp_path / "a.mp3"), "--job-dir", str(tmp_path / "j"))
    assert again.returncode == 2
    assert "--resume" in again.stderr and "--force" in again.stderr


def test_editing_one_line_rerenders_only_that_line(tmp_path):
    script = parse_script(LONGER)
    voices = assign_voices(script.speakers, {}, {}, load_templates())
    job = Job.create(tmp_path, LONGER, voices)
    job.render()
    before = {c.key: (tmp_path / c.file).stat().st_mtime_ns for c in job.manifest.chunks}

    edited = LONGER.replace("Then we will wait a little longer.", "Then we will wait and see.")
    job = Job.create(tmp_path, edited, voices)
    pending = job.pending
    assert [job.script.lines[c.line_index].text for c in pending] == ["Then we will wait and see."]
    seen = []
    job.render(progress=seen.append)
    assert [p.text for p in seen if p.text] == ["Then we will wait and see."]
    after = {c.key: (tmp_path / c.file).stat().st_mtime_ns for c in job.manifest.chunks}
    assert all(after[k] == before[k] for k in after if k in before), "an unchanged chunk was re-rendered"


def test_progress_reports_every_chunk_with_eta(tmp_path):
    script = parse_script(DIALOGUE)
    voices = assign_voices(script.speakers, {}, {}, load_templates())
    job = Job.create(tmp_path, DIALOGUE, voices)
    seen = []
    job.render(progress=seen.append)
    assert [p.done for p in seen] == list(range(len(job.manifest.chunks) + 1))
    assert seen[-1].done == seen[-1].total and seen[-1].eta == 0
    assert all(p.eta is not None for p in seen[1:])
    assert seen[0].text and seen[0].speaker == "Alice"

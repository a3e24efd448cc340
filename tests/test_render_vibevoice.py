"""A VibeVoice job through the same renderer, exports and CLI users use (tiny random checkpoint).

Random weights never choose the control tokens, so the engine the renderer gets is given a test-only
logits processor; loading, diffusion, CFG, codecs, state files and the job directory are all real.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_cli  # noqa: E402
from vibevoice_tiny import VOICE_SCRIPT, forced_engine, speech_plan, tiny_dir  # noqa: E402

from vibevoice.engines import get_engine  # noqa: E402
from vibevoice.export import export_job  # noqa: E402
from vibevoice.job.model import RenderSettings  # noqa: E402
from vibevoice.job.runner import Job  # noqa: E402
from vibevoice.script import parse_script  # noqa: E402
from vibevoice.voices import assign_voices, load_templates  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tiny_dir(tmp_path_factory)


@pytest.fixture
def engine(model_dir, one_torch_thread):
    """The renderer's shared engine instance, steered like ``forced_engine`` steers its own."""
    shared = get_engine("vibevoice", model_dir=str(model_dir))
    shared.logits_processors = forced_engine(model_dir, speech_plan(12, segments=3), chunk_frames=4).logits_processors
    shared.chunk_frames = 4
    yield shared
    shared.logits_processors = None


def test_vibevoice_job_renders_exports_and_times_every_line(engine, model_dir, tmp_path):
    script = parse_script(VOICE_SCRIPT)
    voices = assign_voices(script.speakers, script.speaker_languages(), {}, load_templates())  # Kokoro presets
    settings = RenderSettings(engine="vibevoice", model_dir=str(model_dir), seed=3)
    job = Job.create(tmp_path / "job", VOICE_SCRIPT, voices, settings)
    assert len(job.manifest.chunks) == 1  # the model speaks the whole script as one stream
    job.render()
    outputs = export_job(job, tmp_path / "show.mp3")
    audio, rate = sf.read(outputs["wav"])
    assert rate == 24_000 and audio.shape[0] > 24_000 * 1.0
    cues = open(outputs["srt"], encoding="utf-8").read()
    assert cues.count(" --> ") == len(script.lines)
    assert (tmp_path / "job" / "state" / "vibevoice").exists()

    # Resuming a finished job re-renders nothing; a changed seed is a different generation.
    again = Job.create(tmp_path / "job", VOICE_SCRIPT, voices, settings)
    assert again.pending == [] and again.manifest.chunks[0].spans == job.manifest.chunks[0].spans  # timings kept
    changed = RenderSettings(engine="vibevoice", model_dir=str(model_dir), seed=4)
    assert len(Job.create(tmp_path / "job2", VOICE_SCRIPT, voices, changed).pending) == 1


def test_cli_refuses_vibevoice_without_a_checkpoint(tmp_path):
    script = tmp_path / "s.txt"
    script.write_text(VOICE_SCRIPT)
    result = run_cli("render", str(script), "--engine", "vibevoice", "-o", str(tmp_path / "o.mp3"),
                     env={"VIBEVOICE_MODEL_DIR": ""})
    assert result.returncode == 2 and "--model-dir" in result.stderr and "Traceback" not in result.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    result = run_cli("render", str(script), "--engine", "vibevoice", "--model-dir", str(broken),
                     "-o", str(tmp_path / "o.mp3"))
    assert result.returncode == 2 and "config.json" in result.stderr


def test_a_cloned_voice_job_records_consent_and_announces_itself(engine, model_dir, tmp_path):
    from vibevoice_tiny import noise_clip

    from vibevoice.cloning import clone_voice
    from vibevoice.provenance import read_tags

    script = parse_script(VOICE_SCRIPT)
    voices = assign_voices(script.speakers, script.speaker_languages(), {}, load_templates())
    clip = noise_clip(tmp_path / "guest.wav", seconds=4).read_bytes()
    voices[script.speakers[0]] = clone_voice("Guest", clip, ".wav", consent=True, actor="test")
    settings = RenderSettings(engine="vibevoice", model_dir=str(model_dir), seed=3)  # disclosure: auto
    job = Job.create(tmp_path / "job", VOICE_SCRIPT, voices, settings)
    job.render()
    outputs = export_job(job, tmp_path / "show.mp3")
    saved = Job.open(tmp_path / "job").manifest.voices[script.speakers[0]].spec.consent
    assert saved is not None and saved.confirmed_by == "test" and saved.clip_sha256
    first_cue = open(outputs["srt"], encoding="utf-8").read().split("\n\n")[0]
    assert first_cue.endswith("[Notice] This audio was generated with artificial intelligence.")
    tags = read_tags(outputs["mp3"])
    assert tags["CLONED_VOICE"] == "yes" and tags["ENGINE"] == "vibevoice"


def test_qa_times_and_scores_every_line_of_a_whole_script_take(engine, model_dir, tmp_path):
    script = parse_script(VOICE_SCRIPT)
    voices = assign_voices(script.speakers, script.speaker_languages(), {}, load_templates())
    settings = RenderSettings(engine="vibevoice", model_dir=str(model_dir), seed=3, qa=True)
    job = Job.create(tmp_path / "job", VOICE_SCRIPT, voices, settings)
    job.render()
    (chunk,) = job.manifest.chunks
    assert [t.line_index for t in chunk.takes] == [line.index for line in script.lines]
    # Random weights speak no words: every line is reported, none is silently passed.
    assert all(not t.passed and t.reasons for t in chunk.takes)
    starts = [begin for _, begin, _ in chunk.spans]
    assert starts == sorted(starts) and chunk.spans[-1][2] <= chunk.samples

"""Every exported file says it is AI-generated speech, in tags its format's tools read; the spoken notice."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
from mutagen.flac import FLAC
from mutagen.id3 import ID3

from vibevoice import __version__, disclosure
from vibevoice.export import export_job
from vibevoice.job.model import RenderSettings
from vibevoice.job.runner import Job
from vibevoice.provenance import read_tags
from vibevoice.voices import CloneSpec, VoiceTemplate, load_templates


@pytest.mark.parametrize("kind", ["wav", "mp3", "flac", "stem:Alice"])
def test_every_audio_output_carries_provenance(rendered_job, kind):
    job, outputs = rendered_job
    tags = read_tags(outputs[kind])
    assert tags["AI_GENERATED"] == "yes" and tags["DESCRIPTION"] == "AI-generated speech"
    assert tags["ENCODER"] == f"vibevoice-webui {__version__}" and tags["ENGINE"] == "kokoro"
    assert tags["JOB_ID"] == job.manifest.job_id and tags["DATE"][:4].isdigit() and tags["CLONED_VOICE"] == "no"


def test_each_format_uses_its_own_standard_fields(rendered_job):
    job, outputs = rendered_job
    id3 = ID3(outputs["mp3"])
    assert job.manifest.job_id in str(id3["TIT2"]) and "AI-generated speech" in str(id3.getall("COMM")[0])
    with sf.SoundFile(outputs["wav"]) as wav:  # the RIFF INFO chunk, as Windows and Audacity show it
        assert wav.comment.startswith("AI-generated speech") and job.manifest.job_id in wav.comment
        assert wav.software.startswith("vibevoice-webui")
    flac = FLAC(outputs["flac"])
    assert flac["AI_GENERATED"] == ["yes"] and flac["COMMENT"][0].startswith("AI-generated speech")
    # The tags do not change the audio: FLAC decodes to exactly the WAV's samples.
    assert (sf.read(outputs["flac"], dtype="int16")[0] == sf.read(outputs["wav"], dtype="int16")[0]).all()


def test_spoken_notice_at_the_start_or_end(tmp_path):
    voices = load_templates()
    script = "[A] Hello there.\n[B] Hi, nice to meet you.\n"
    cues = {}
    for where in ("off", "start", "end"):
        job = Job.create(tmp_path / where, script, {"A": voices["deep-male"], "B": voices["bright-female"]},
                         RenderSettings(disclosure=where))
        job.render()
        outputs = export_job(job, tmp_path / where / "show.mp3")
        cues[where] = Path(outputs["srt"]).read_text("utf-8").strip().split("\n\n")
    notice = "[Notice] This audio was generated with artificial intelligence."
    assert len(cues["off"]) == 2 and notice not in "".join(cues["off"])
    assert cues["start"][0].endswith(notice) and cues["end"][-1].endswith(notice)
    # Lines keep their order and are only shifted by the notice's length plus its gap.
    first_line = lambda blocks: next(b for b in blocks if "[A]" in b).split("\n")[1]  # noqa: E731
    assert first_line(cues["off"]) == first_line(cues["end"]) != first_line(cues["start"])


def test_notice_is_on_by_default_only_for_cloned_voices():
    presets = {"A": load_templates()["deep-male"]}
    cloned = VoiceTemplate(id="c", name="c", engine="vibevoice", languages=["en"],
                           spec=CloneSpec(clip="x.wav", consent={"confirmed_at": "now"}))
    assert disclosure.placement("auto", presets) is None
    assert disclosure.placement("auto", {**presets, "B": cloned}) == "start"
    assert disclosure.placement("end", presets) == "end" and disclosure.placement("off", {"B": cloned}) is None


def test_exports_carry_the_watermark_that_detect_finds(rendered_job):
    from conftest import run_cli

    job, outputs = rendered_job
    assert read_tags(outputs["mp3"])["WATERMARK"] == "vibevoice-spectral-ss-1"
    result = run_cli("detect", outputs["mp3"], outputs["flac"], outputs["stem:Alice"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("watermark found") == 3
    assert result.stdout.count("tags: AI-generated speech — encoder=vibevoice-webui") == 3

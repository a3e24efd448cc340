"""Exports decode back to what was rendered, subtitles cover every line, loudness is −16 LUFS."""

from __future__ import annotations

import re

import lameenc  # noqa: F401  (the encoder under test; decoding uses libsndfile)
import numpy as np
import pyloudnorm
import soundfile as sf
import soxr

from vibevoice.engines import SAMPLE_RATE


def _cues(text: str, sep: str) -> list[tuple[float, float, str]]:
    pattern = rf"(\d\d):(\d\d):(\d\d){sep}(\d\d\d) --> (\d\d):(\d\d):(\d\d){sep}(\d\d\d)\n(.+)"
    out = []
    for m in re.finditer(pattern, text):
        g = [int(x) for x in m.groups()[:8]]
        out.append((g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000, g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000,
                    m.group(9)))
    return out


def test_wav_and_mp3_decode_to_the_same_duration(rendered_job):
    job, outputs = rendered_job
    wav, rate = sf.read(outputs["wav"], dtype="float32")
    info = sf.info(outputs["wav"])
    assert rate == SAMPLE_RATE and info.subtype == "PCM_16" and info.channels == 1
    mp3, mp3_rate = sf.read(outputs["mp3"], dtype="float32")
    assert mp3_rate == SAMPLE_RATE
    assert abs(mp3.shape[0] / mp3_rate - wav.shape[0] / rate) < 0.1  # encoder delay/padding only
    spoken = sum(c.samples for c in job.manifest.chunks) / SAMPLE_RATE
    assert spoken < wav.shape[0] / rate < spoken + 5  # speech plus the gaps and pauses between lines


def test_loudness_is_podcast_standard(rendered_job):
    _, outputs = rendered_job
    wav, rate = sf.read(outputs["wav"], dtype="float64")
    assert abs(pyloudnorm.Meter(rate).integrated_loudness(wav) - (-16.0)) <= 1.0
    true_peak = np.abs(soxr.resample(wav, rate, 4 * rate)).max()
    assert 20 * np.log10(true_peak) <= -0.8  # −1 dBTP ceiling, with the 16-bit rounding margin


def test_subtitles_cover_every_line_in_order(rendered_job):
    job, outputs = rendered_job
    duration = sf.info(outputs["wav"]).duration
    lines = job.script.lines
    for kind, sep in (("srt", ","), ("vtt", r"\.")):
        text = open(outputs[kind], encoding="utf-8").read()
        cues = _cues(text, sep)
        assert len(cues) == len(lines)
        for (start, end, label), line in zip(cues, lines):
            assert 0 <= start < end <= duration
            assert line.text in label and line.speaker in label
        assert all(a[1] <= b[0] for a, b in zip(cues, cues[1:])), "cues overlap or are out of order"
    assert open(outputs["vtt"], encoding="utf-8").read().startswith("WEBVTT")


def test_pause_tag_becomes_silence(rendered_job):
    from vibevoice.export import layout

    job, outputs = rendered_job
    cues = _cues(open(outputs["srt"], encoding="utf-8").read(), ",")
    # Line 2 (Ben) is split by [pause 600ms]: its second half is placed exactly 0.6 s after the first
    # ends, and the subtitles (timed to the words) leave at least that much between the two halves.
    pause_line = next(i for i, line in enumerate(job.script.lines) if line.pause_before)
    placed, _ = layout(job)
    (before, start_before), (after, start_after) = [(c, s) for c, s in placed
                                                    if c.line_index in (pause_line - 1, pause_line)][-2:]
    gap = (start_after - start_before - before.samples) / SAMPLE_RATE
    assert abs(gap - job.script.lines[pause_line].pause_before) < 0.001
    assert cues[pause_line][0] - cues[pause_line - 1][1] >= job.script.lines[pause_line].pause_before - 0.01


def test_stems_sum_to_the_mix(rendered_job):
    job, outputs = rendered_job
    mix, _ = sf.read(outputs["wav"], dtype="float32")
    stems = [sf.read(outputs[f"stem:{s}"], dtype="float32")[0] for s in job.script.speakers]
    assert all(s.shape == mix.shape for s in stems)
    assert np.abs(sum(stems) - mix).max() < 3 / 32768  # 16-bit rounding of each file
    for speaker, stem in zip(job.script.speakers, stems):
        assert np.sqrt(np.mean(stem**2)) > 0.005, f"stem of {speaker} is silent"


def test_joins_do_not_click(rendered_job):
    from vibevoice.export import layout

    job, outputs = rendered_job
    wav, rate = sf.read(outputs["wav"], dtype="float32")
    # Every chunk fades in and out, so the audio around each join is near silence, never a step.
    for chunk, start in layout(job)[0]:
        for edge in (start, start + chunk.samples):
            around = wav[max(0, edge - 48):edge + 12]
            assert np.abs(around).max() < 0.02, f"a click at {edge / rate:.3f} s"

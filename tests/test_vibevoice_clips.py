"""Reference clips for VibeVoice: any common file becomes 24 kHz mono, and bad clips are caught early."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from vibevoice.engines.vibevoice.processing import (
    LONG_CLIP_SECONDS,
    MAX_CLIP_SECONDS,
    SAMPLE_RATE,
    ClipError,
    check_clip,
    load_clip,
    plan_scenes,
    speaker_roles,
)
from vibevoice.script import parse_script


def _tone(seconds: float, rate: int, freq: float = 440.0, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.argmax(spectrum) * rate / audio.size)


@pytest.mark.parametrize("fmt,rate", [("WAV", 48000), ("FLAC", 44100), ("OGG", 16000), ("MP3", 44100)])
def test_formats_resampled_to_24k(tmp_path, fmt, rate):
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(str(path), _tone(3.0, rate), rate, format=fmt)
    clip = load_clip(path)
    assert clip.original_rate == rate
    assert abs(clip.seconds - 3.0) < 0.1  # MP3 adds encoder padding
    assert clip.audio.dtype == np.float32 and clip.audio.ndim == 1
    assert abs(_peak_hz(clip.audio, SAMPLE_RATE) - 440) < 2


def test_stereo_is_mixed_to_mono(tmp_path):
    left, right = _tone(2.0, 24000, 440), _tone(2.0, 24000, 1000)
    path = tmp_path / "stereo.wav"
    sf.write(str(path), np.stack([left, right], axis=1), 24000)
    clip = load_clip(path)
    assert clip.original_channels == 2
    np.testing.assert_allclose(clip.audio, (left + right) / 2, atol=1e-4)


def test_bytes_upload(tmp_path):
    path = tmp_path / "up.wav"
    sf.write(str(path), _tone(2.0, 22050), 22050)
    assert abs(load_clip(path.read_bytes()).seconds - 2.0) < 0.01


def test_too_short_and_too_long():
    with pytest.raises(ClipError, match="too short"):
        check_clip(_tone(0.5, 24000), 24000)
    with pytest.raises(ClipError, match="too long"):
        check_clip(_tone(MAX_CLIP_SECONDS + 1, 8000), 8000)
    long = check_clip(_tone(LONG_CLIP_SECONDS + 5, 8000), 8000)
    assert any("cost memory" in w for w in long.warnings)
    assert check_clip(_tone(5, 24000), 24000).warnings == []


def test_silence_and_clipping():
    with pytest.raises(ClipError, match="silent"):
        check_clip(np.zeros(48000, np.float32), 24000)
    clipped = np.clip(_tone(3, 24000, level=2.0), -1, 1)
    assert any("clipped" in w for w in check_clip(clipped, 24000).warnings)
    mostly_quiet = np.concatenate([_tone(1, 24000), np.zeros(4 * 24000, np.float32)])
    assert any("mostly silence" in w for w in check_clip(mostly_quiet, 24000).warnings)


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(ClipError, match="cannot be read"):
        load_clip(bad)
    with pytest.raises(ClipError, match="does not exist|cannot be read"):
        load_clip(tmp_path / "missing.wav")


def test_roles_and_speaker_limit():
    script = parse_script("[Ann] One.\n[Bob] Two.\n[Ann] Three.")
    assert speaker_roles(script) == {"Ann": "0", "Bob": "1"}
    five = parse_script("\n".join(f"[S{i}] Line {i}." for i in range(5)), max_speakers=5)
    with pytest.raises(ValueError, match="at most 4"):
        speaker_roles(five)


def test_scenes_split_only_when_the_context_is_full():
    script = parse_script("\n".join(f"[{'AB'[i % 2]}] " + "word " * 40 for i in range(20)))
    clip = check_clip(_tone(4, 24000), 24000)
    clips = {"A": clip, "B": clip}
    count = lambda text: len(text.split()) + 2  # noqa: E731
    assert len(plan_scenes(script.lines, clips, count, 100_000)) == 1
    scenes = plan_scenes(script.lines, clips, count, 1500)
    assert len(scenes) > 1
    assert [line.index for s in scenes for line in s.lines] == list(range(20))  # every line once, in order
    for scene in scenes:
        assert scene.prompt_tokens > 2 * clip.tokens  # each scene keeps its speakers' voice prompts

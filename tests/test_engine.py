"""The embedded engine speaks every preset, in English and Mandarin, with real weights."""

from __future__ import annotations

import numpy as np
import pytest

from vibevoice.engines import SAMPLE_RATE, get_engine
from vibevoice.engines.kokoro import MAX_TOKENS
from vibevoice.script import estimate_speech_seconds
from vibevoice.voices import load_templates

ENGLISH = "Do you think AI can write novels? Sure, once it learns to tell stories."
MANDARIN = "大家好，欢迎收听本期节目。今天我们聊聊人工智能写小说。"

PRESETS = {t.id: t for t in load_templates().values() if t.engine == "kokoro"}


def _speech_checks(audio: np.ndarray, text: str, language: str) -> None:
    seconds = audio.size / SAMPLE_RATE
    expected = estimate_speech_seconds(text, language)
    assert audio.dtype == np.float32
    assert 0.4 * expected < seconds < 2.5 * expected, (seconds, expected)
    rms = float(np.sqrt(np.mean(audio**2)))
    assert rms > 0.01, "audio is (nearly) silent"
    assert np.abs(audio).max() <= 1.5


@pytest.mark.parametrize("voice_id", [v for v, t in PRESETS.items() if "en" in t.languages])
def test_english_presets_speak(voice_id):
    _speech_checks(get_engine("kokoro").speak(ENGLISH, PRESETS[voice_id]), ENGLISH, "en")


@pytest.mark.parametrize("voice_id", [v for v, t in PRESETS.items() if "zh" in t.languages])
def test_mandarin_presets_speak(voice_id):
    _speech_checks(get_engine("kokoro").speak(MANDARIN, PRESETS[voice_id]), MANDARIN, "zh")


def test_enough_distinct_presets():
    english = [t for t in PRESETS.values() if "en" in t.languages]
    mandarin = [t for t in PRESETS.values() if "zh" in t.languages]
    assert len(english) >= 6 and len(mandarin) >= 3
    assert len({t.spec.model_dump_json() for t in english}) == len(english), "two English presets are the same voice"


def test_speed_changes_duration():
    voice = PRESETS["deep-male"]
    engine = get_engine("kokoro")
    normal = engine.speak(ENGLISH, voice, 1.0).size
    slow = engine.speak(ENGLISH, voice, 0.75).size
    assert slow > 1.2 * normal


def test_text_longer_than_the_window_is_spoken_whole():
    sentence = "The quick brown fox jumps over the lazy dog near the river bank. "
    text = sentence * 20  # far past the 510-token window
    engine = get_engine("kokoro")
    assert len(engine.phonemize(text)) > 2 * MAX_TOKENS
    audio = engine.speak(text, PRESETS["bright-female"])
    one = engine.speak(sentence, PRESETS["bright-female"])
    assert audio.size > 17 * one.size  # nothing was cut at the window edge


def test_mixed_english_in_mandarin_is_spoken():
    engine = get_engine("kokoro")
    phonemes = engine.phonemize("我们今天聊聊AI吧。")
    assert "ˈAˌI" in phonemes  # English run went through the English G2P, not read as phoneme symbols


def test_kokoro_speaks_english_and_mandarin_without_loading_torch():
    """spaCy's thinc would import torch (~180 MB resident) for a tagger that runs on numpy; a Kokoro-only
    process keeps it out, and torch still imports normally afterwards for whoever needs it."""
    import subprocess
    import sys

    code = ("import sys; from vibevoice.engines import get_engine; from vibevoice.voices import load_templates; "
            "t = load_templates(); e = get_engine('kokoro'); "
            "a = e.speak('Hello there, how are you?', t['warm-female']); b = e.speak('你好，欢迎收听。', t['zh-female']); "
            "assert a.size > 0 and b.size > 0; print('torch' in sys.modules); import torch; print(torch.ones(1).item())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "1.0"]

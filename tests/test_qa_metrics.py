"""Each quality metric on constructed cases whose answer is known, with the real models.

Lines are rendered once per module with the embedded Kokoro engine (deep-male, bright-female,
zh-male), then damaged on purpose: a word cut out, a click added, a line in the wrong voice.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from vibevoice.engines import SAMPLE_RATE, get_engine
from vibevoice.voices import load_templates

EN_LINE = "The harbour lights came on one by one as the ferry pulled away from the pier."
EN_NEXT = "Nobody on board said a word until the island was out of sight."
ZH_LINE = "今天天气很好，我们一起去公园散步吧。"


@functools.cache
def speak(text: str, voice: str) -> np.ndarray:
    return get_engine("kokoro").speak(text, load_templates()[voice])


@pytest.fixture(scope="module")
def references():
    from vibevoice.qa.speakers import voice_reference

    templates = load_templates()
    return {"Host": voice_reference(templates["deep-male"]), "Guest": voice_reference(templates["bright-female"])}


# -- normalisation and error rates (no models) ---------------------------------------------------------


def test_formatting_is_not_an_error():
    from vibevoice.qa.intelligibility import error_rate

    assert error_rate("Dr. Smith paid $5", "doctor smith paid five dollars", "en").error_rate == 0
    assert error_rate("It was 1999, and 25% of us were 21st-century kids.",
                      "It was nineteen ninety-nine and twenty five percent of us were twenty first century kids",
                      "en").error_rate == 0
    assert error_rate("At a hundred kilometres an hour, in the harbour, with earplugs.",
                      "At 100 km an hour in the harbor with ear plugs", "en").error_rate == 0
    # Whisper writes traditional characters and Arabic numerals at will; neither is a speech error.
    assert error_rate("我们花了十二元", "我們花了12元", "zh").error_rate == 0


def test_error_counts_name_the_kind_of_mistake():
    from vibevoice.qa.intelligibility import error_rate

    dropped = error_rate("the cat sat on the mat", "the cat on the mat", "en")
    assert (dropped.deletions, dropped.insertions, dropped.substitutions) == (1, 0, 0)
    assert dropped.error_rate == pytest.approx(1 / 6)
    assert error_rate("今天天气很好", "今天天气很", "zh").deletions == 1


# -- intelligibility and recognition -------------------------------------------------------------------


def test_a_clean_english_line_scores_zero_and_a_missing_word_does_not():
    from vibevoice.qa.intelligibility import score_line

    audio = speak(EN_LINE, "deep-male")
    clean, heard = score_line(audio, SAMPLE_RATE, EN_LINE, "en")
    assert clean.error_rate == 0, heard
    # The script asks for a word the audio never says: one deletion.
    longer = EN_LINE.replace("ferry", "old ferry")
    missing, _ = score_line(audio, SAMPLE_RATE, longer, "en")
    assert missing.deletions == 1 and missing.error_rate > 0


def test_a_word_cut_from_the_audio_raises_wer():
    from vibevoice.qa.intelligibility import score_line
    from vibevoice.qa.recognise import align_words

    audio = speak(EN_LINE, "deep-male")
    words = align_words(audio, SAMPLE_RATE, EN_LINE, "en")
    harbour = next(w for w in words if "harbour" in w.text.lower() or "harbor" in w.text.lower())
    cut = np.concatenate([audio[: int(harbour.start * SAMPLE_RATE)], audio[int(harbour.end * SAMPLE_RATE):]])
    scored, heard = score_line(cut, SAMPLE_RATE, EN_LINE, "en")
    assert scored.error_rate >= 1 / 16 and scored.deletions + scored.substitutions >= 1, heard


def test_mandarin_cer_is_low_on_a_rendered_line():
    from vibevoice.qa.intelligibility import score_line

    scored, heard = score_line(speak(ZH_LINE, "zh-male"), SAMPLE_RATE, ZH_LINE, "zh")
    assert scored.unit == "cer" and scored.error_rate <= 0.1, heard


def test_line_times_recover_the_boundaries_of_two_lines():
    from vibevoice.qa.recognise import line_times

    first, second = speak(EN_LINE, "deep-male"), speak(EN_NEXT, "bright-female")
    gap = np.zeros(int(0.6 * SAMPLE_RATE), np.float32)
    audio = np.concatenate([first, gap, second])
    (s1, e1), (s2, e2) = line_times(audio, SAMPLE_RATE, [EN_LINE, EN_NEXT], "en")
    truth = [0.0, first.size / SAMPLE_RATE, (first.size + gap.size) / SAMPLE_RATE, audio.size / SAMPLE_RATE]
    for found, expected in zip((s1, e1, s2, e2), truth):
        assert abs(found - expected) < 0.35, (found, expected)
    assert e1 <= s2


# -- speakers and the per-take gate --------------------------------------------------------------------


def test_a_line_in_the_wrong_voice_is_attributed_to_the_other_speaker(references):
    from vibevoice.qa.speakers import accuracy, attribution, embed

    right, wrong = embed(speak(EN_LINE, "deep-male"), SAMPLE_RATE), embed(speak(EN_LINE, "bright-female"), SAMPLE_RATE)
    found = attribution([right, wrong], ["Host", "Host"], references)
    assert found[0].closest == "Host" and found[0].margin > 0.1
    assert found[1].closest == "Guest" and found[1].margin < 0
    assert accuracy(found) == 0.5


def test_voice_references_are_cached_by_voice_content(references, app_home):
    from vibevoice.qa.speakers import voice_reference

    cached = list((app_home / "cache" / "qa" / "voices").glob("*.npy"))
    assert len(cached) >= 2
    again = voice_reference(load_templates()["deep-male"])
    assert np.array_equal(again, references["Host"])
    slower = load_templates()["deep-male"].model_copy(update={"speed": 0.8})
    assert not np.array_equal(voice_reference(slower), references["Host"])


def test_drift_compares_late_lines_with_early_ones():
    from vibevoice.qa.speakers import drift

    a, b = np.eye(4, dtype=np.float32)[0], np.eye(4, dtype=np.float32)[1]
    assert drift([a, a, a, b], ["x"] * 4, early=2) == [None, None, 1.0, 0.0]


def test_check_take_passes_a_good_take_and_fails_a_wrong_voice(references):
    from vibevoice.qa.check import check_take

    good = check_take(speak(EN_LINE, "deep-male"), EN_LINE, "en", "Host", references)
    assert good.passed and good.closest == "Host" and good.wer == 0, good.reasons
    wrong = check_take(speak(EN_LINE, "bright-female"), EN_LINE, "en", "Host", references)
    assert not wrong.passed and wrong.closest == "Guest"
    assert any("closer to Guest" in reason for reason in wrong.reasons)
    garbled = check_take(speak(EN_NEXT, "deep-male"), EN_LINE, "en", "Host", references)
    assert not garbled.passed and any(reason.startswith("WER") for reason in garbled.reasons)
    silent = check_take(np.zeros(SAMPLE_RATE, np.float32), EN_LINE, "en", "Host", references)
    assert not silent.passed and silent.similarity == 0


# -- seams, loudness, MOS ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def programme(rendered_job):
    from vibevoice.export import assemble
    from vibevoice.qa.seams import job_joins

    job, _ = rendered_job
    joins, planned = job_joins(job)
    return assemble(job).audio, joins, planned


def test_clean_joins_are_not_flagged(programme):
    from vibevoice.qa.seams import find_seams

    audio, joins, planned = programme
    assert find_seams(audio, joins, planned, SAMPLE_RATE) == []


def test_an_inserted_click_is_detected_at_every_join(programme):
    from vibevoice.qa.seams import find_clicks

    audio, joins, _ = programme
    for join in joins:
        clicked = audio.copy()
        clicked[join + 5] += 0.05  # a −26 dBFS single-sample click
        found = find_clicks(clicked, joins, SAMPLE_RATE)
        assert [s.kind for s in found] == ["click"] and abs(found[0].time - join / SAMPLE_RATE) < 0.01


def test_unplanned_silence_is_flagged(programme):
    from vibevoice.qa.seams import find_long_silences

    audio, joins, planned = programme
    stalled = np.concatenate([audio[: joins[1]], np.zeros(2 * SAMPLE_RATE, np.float32), audio[joins[1]:]])
    shifted = [(a, b) if b <= joins[1] else (a + 2 * SAMPLE_RATE, b + 2 * SAMPLE_RATE) for a, b in planned]
    found = find_long_silences(stalled, shifted, SAMPLE_RATE)
    assert len(found) == 1 and found[0].value > 1.5


def test_loudness_and_rate_of_a_line():
    from vibevoice.qa import loudness

    audio = speak(EN_LINE, "deep-male")
    assert -30 < loudness.lufs(audio, SAMPLE_RATE) < -10
    assert loudness.lufs(audio * 0.5, SAMPLE_RATE) == pytest.approx(loudness.lufs(audio, SAMPLE_RATE) - 6.02, abs=0.1)
    assert 1.5 < loudness.speaking_rate(audio, SAMPLE_RATE, EN_LINE, "en") < 5  # words per second
    assert loudness.spoken_units(ZH_LINE, "zh") == 16
    assert loudness.rate_vs_plan([2.0, 2.4, 1.6], ["a", "a", "a"], [1.0, 1.2, 1.0]) == [1.0, 1.0, 0.8]


def test_mos_ranks_speech_above_noise():
    from vibevoice.qa.mos import mos

    speech = speak(EN_LINE, "deep-male")
    noise = np.random.default_rng(0).normal(0, 0.1, speech.size).astype(np.float32)
    assert mos(speech, SAMPLE_RATE) > 3.0 > mos(noise, SAMPLE_RATE)

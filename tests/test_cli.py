"""The command line as a user meets it: check, voices, errors with line numbers, assignments."""

from __future__ import annotations

from conftest import run_cli


def test_check_prints_speakers_lines_and_estimates(tmp_path):
    result = run_cli("check", "presets/scripts/roundtable-en.txt")
    assert result.returncode == 0, result.stderr
    for speaker in ("Speaker 1", "Speaker 2", "Speaker 3", "Speaker 4"):
        assert speaker in result.stdout
    assert "6 lines" in result.stdout  # the [pause] splits one turn in two and "of audio" in result.stdout and "rendering takes" in result.stdout


def test_bad_script_reports_every_problem_with_line_numbers(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("[A] Hello.\n[] Nobody.\n[B]\n[C] One.\n[D] Two.\n[E] Five is too many.\n")
    result = run_cli("check", str(bad))
    assert result.returncode == 2
    assert "line 2" in result.stderr and "line 3" in result.stderr and "line 6" in result.stderr
    assert "Traceback" not in result.stderr


def test_binary_input_is_refused_clearly(tmp_path):
    blob = tmp_path / "song.mp3"
    blob.write_bytes(b"ID3\x03\x00\x00\x00\xff\xfb\x90\x00" * 10)
    result = run_cli("render", str(blob), "-o", str(tmp_path / "x.mp3"))
    assert result.returncode == 2 and "line 1" in result.stderr and "Traceback" not in result.stderr


def test_voices_lists_presets():
    result = run_cli("voices")
    assert result.returncode == 0
    for voice in ("deep-male", "bright-female", "warm-female", "zh-male", "zh-female", "zh-mid"):
        assert voice in result.stdout


def test_unknown_voice_or_speaker_in_assignment_is_an_error(tmp_path):
    script = tmp_path / "s.txt"
    script.write_text("[A] Hi.\n[B] Hello.\n")
    unknown_voice = run_cli("render", str(script), "--voice", "A=nobody", "-o", str(tmp_path / "o.mp3"))
    assert unknown_voice.returncode == 2 and "unknown voice 'nobody'" in unknown_voice.stderr
    unknown_speaker = run_cli("render", str(script), "--voice", "Z=deep-male", "-o", str(tmp_path / "o.mp3"))
    assert unknown_speaker.returncode == 2 and "no speaker 'Z'" in unknown_speaker.stderr


def test_render_reports_assignment_and_writes_every_format(tmp_path):
    script = tmp_path / "s.txt"
    script.write_text("[Host] Welcome.\n[Guest] Thanks for having me.\n")
    result = run_cli("render", str(script), "--voice", "guest=warm-female", "-o", str(tmp_path / "show.mp3"),
                     "--job-dir", str(tmp_path / "job"))
    assert result.returncode == 0, result.stderr
    assert "Host → deep-male" in result.stdout and "Guest → warm-female" in result.stdout
    for suffix in (".mp3", ".wav", ".srt", ".vtt"):
        assert (tmp_path / f"show{suffix}").stat().st_size > 0

"""Tests for the script parser: every accepted form, every error kind, and fuzzing."""

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vibevoice.script import (
    DEFAULT_PAUSE_SECONDS,
    MAX_PAUSE_SECONDS,
    MAX_SCRIPT_BYTES,
    MAX_SPEECH_SECONDS,
    Line,
    Problem,
    Script,
    ScriptError,
    estimate_speech_seconds,
    parse_script,
)


def texts(script: Script) -> list[tuple[str, str]]:
    return [(line.speaker, line.text) for line in script.lines]


def problems(text, **kw) -> list[Problem]:
    with pytest.raises(ScriptError) as info:
        parse_script(text, **kw)
    assert all(p.line >= 1 and p.column >= 1 for p in info.value.problems)
    return info.value.problems


def only_problem(text, **kw) -> Problem:
    found = problems(text, **kw)
    assert len(found) == 1, found
    return found[0]


# --- accepted forms ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, speaker",
    [
        ("[A] Hello there.", "A"),
        ("[Alice] Hello there.", "Alice"),
        ("[Dr. Smith] Hello there.", "Dr. Smith"),
        ("【A】Hello there.", "A"),
        ("Speaker 1: Hello there.", "Speaker 1"),
        ("Speaker 1：Hello there.", "Speaker 1"),
        ("  speaker 1 : Hello there.", "Speaker 1"),
        ("[1] Hello there.", "Speaker 1"),
        ("[1]: Hello there.", "Speaker 1"),
        ("【1】：Hello there.", "Speaker 1"),
        ("[Speaker 1] Hello there.", "Speaker 1"),
        ("[S1] Hello there.", "S1"),
        ("[  Mary   Jane ] Hello there.", "Mary Jane"),
        ("[O'Brien-Smith_2] Hello there.", "O'Brien-Smith_2"),
        ("[小明] Hello there.", "小明"),
        ("[José] Hello there.", "José"),
    ],
)
def test_speaker_tag_forms(source, speaker):
    script = parse_script(source)
    assert texts(script) == [(speaker, "Hello there.")]
    assert script.speakers == [speaker]


def test_several_tags_per_line():
    script = parse_script("[A] Do you think AI can write novels? [B] Sure, once it learns to tell stories.")
    assert texts(script) == [("A", "Do you think AI can write novels?"), ("B", "Sure, once it learns to tell stories.")]
    assert [(line.index, line.turn) for line in script.lines] == [(0, 0), (1, 1)]
    assert [(line.source_line, line.column) for line in script.lines] == [(1, 5), (1, 43)]


def test_numbered_forms_are_one_speaker():
    script = parse_script("[1] a\nSpeaker 1: b\n[Speaker 1] c\n[speaker 01]: d\n[2] e")
    assert script.speakers == ["Speaker 1", "Speaker 2"]
    assert [line.speaker for line in script.lines] == ["Speaker 1"] * 4 + ["Speaker 2"]


def test_names_match_case_insensitively_keeping_first_spelling():
    script = parse_script("[Alice] hi\n[BOB] yo\n[alice] again\n[bob] ok")
    assert script.speakers == ["Alice", "BOB"]
    assert [line.speaker for line in script.lines] == ["Alice", "BOB", "Alice", "BOB"]


def test_speaker_n_only_at_line_start():
    script = parse_script("[A] I said Speaker 1: hello")
    assert texts(script) == [("A", "I said Speaker 1: hello")]


def test_multi_line_turns_and_tag_alone_on_its_line():
    script = parse_script("[Alice]\n  Hello there,\nhow are you?\n\n  still me.\n[B] 我们今天\n聊聊。\n好的\nokay")
    assert texts(script) == [("Alice", "Hello there, how are you? still me."), ("B", "我们今天聊聊。好的 okay")]
    assert [(line.source_line, line.column) for line in script.lines] == [(2, 3), (6, 5)]


def test_comments_and_blank_lines_are_ignored():
    script = parse_script("# Episode 1\n\n[A] one\n   # aside\n\n[B] two # not a comment\n")
    assert texts(script) == [("A", "one"), ("B", "two # not a comment")]


def test_hints_are_removed_and_collected():
    script = parse_script("[A] (Laughs) Well {EXCITED}, that's it (  sighs deeply ). [B] 好（笑）的")
    first, second = script.lines
    assert first.text == "Well, that's it."
    assert first.hints == ["laughs", "excited", "sighs deeply"]
    assert (second.text, second.hints) == ("好的", ["笑"])


def test_half_and_full_width_parens_may_mix():
    assert parse_script("[A] 好（笑)的").lines[0].hints == ["笑"]


def test_hints_with_no_text_after_them_join_the_previous_line():
    script = parse_script("[A] hi [pause] (laughs)\n[B] (sighs) [pause 2s] ok")
    assert [(line.text, line.hints, line.pause_before) for line in script.lines] == [
        ("hi", ["laughs"], 0.0),
        ("ok", ["sighs"], 3.0),
    ]


@pytest.mark.parametrize(
    "tag, seconds",
    [
        ("[pause]", DEFAULT_PAUSE_SECONDS),
        ("[PAUSE]", DEFAULT_PAUSE_SECONDS),
        ("[pause 1.5s]", 1.5),
        ("[pause 800ms]", 0.8),
        ("[pause: 2s]", 2.0),
        ("[Pause 2]", 2.0),
        ("[pause .5 sec]", 0.5),
        ("【pause 3 seconds】", 3.0),
        ("[pause 0s]", 0.0),
        (f"[pause {MAX_PAUSE_SECONDS:g}s]", MAX_PAUSE_SECONDS),
    ],
)
def test_pause_forms(tag, seconds):
    script = parse_script(f"[A] one {tag} two")
    assert [(line.text, line.turn, line.pause_before) for line in script.lines] == [("one", 0, 0.0), ("two", 0, seconds)]


def test_pauses_anywhere_add_up():
    script = parse_script("[pause] [A] hi [pause 2s]\n[pause 500ms]\n[B] there [pause][pause]")
    assert [line.pause_before for line in script.lines] == [1.0, 2.5]
    assert script.trailing_pause == 2.0
    assert [line.turn for line in script.lines] == [0, 1]


def test_pause_alone_on_a_line_splits_a_turn():
    script = parse_script("[A] first part\n[pause 1s]\nsecond part\n[B] ok")
    assert [(line.speaker, line.turn, line.text, line.pause_before) for line in script.lines] == [
        ("A", 0, "first part", 0.0),
        ("A", 0, "second part", 1.0),
        ("B", 1, "ok", 0.0),
    ]


def test_names_starting_with_pause_are_speakers():
    assert parse_script("[Pauser] hi").speakers == ["Pauser"]


def test_narrator_fallback_paragraphs():
    script = parse_script("Once upon a time\nthere was a cat.\n\n\n# note\nThe end. [pause] Really (whispers).\n")
    assert script.speakers == ["Narrator"]
    assert [(line.turn, line.text, line.pause_before, line.source_line) for line in script.lines] == [
        (0, "Once upon a time there was a cat.", 0.0, 1),
        (1, "The end.", 0.0, 6),
        (1, "Really.", 1.0, 6),
    ]
    assert script.lines[2].hints == ["whispers"]


def test_language_detection():
    script = parse_script("[A] Hello world.\n[B] 你好，世界。\n[A] I think 我们应该 go home.\n[B] 我们今天聊聊 AI 吧。\n[A] 42")
    assert [line.language for line in script.lines] == ["en", "zh", "mixed", "zh", "en"]


def test_bom_and_line_endings():
    for source in ("\ufeff[A] one\r\n[B] two\r\n", "[A] one\r[B] two\r", b"\xef\xbb\xbf[A] one\r\n[B] two"):
        script = parse_script(source)
        assert texts(script) == [("A", "one"), ("B", "two")]
        assert [(line.source_line, line.column) for line in script.lines] == [(1, 5), (2, 5)]


def test_bytes_input():
    assert texts(parse_script("[A] 你好".encode())) == [("A", "你好")]


def test_estimates():
    assert estimate_speech_seconds("x" * 150, "en") == pytest.approx(10.0)
    assert estimate_speech_seconds("好" * 45, "zh") == pytest.approx(10.0)
    assert estimate_speech_seconds("2024年", "zh") == pytest.approx(5 / 4.5)
    script = parse_script("[A] " + "x" * 150 + " [pause 2s] [B] " + "好" * 45 + " [pause]")
    assert script.estimated_seconds() == pytest.approx(23.0)
    with pytest.raises(ValueError):
        estimate_speech_seconds("hi", "fr")


def test_models_are_frozen_and_errors_pickle():
    line = parse_script("[A] hi").lines[0]
    assert isinstance(line, Line)
    with pytest.raises(Exception):
        line.text = "changed"  # type: ignore[misc]
    err = pickle.loads(pickle.dumps(ScriptError([Problem(line=2, column=3, message="m", expected="e")])))
    assert str(err) == "line 2, column 3: m (expected: e)" and err.problems[0].line == 2


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["[] hi", "[A] hi\n【 】 hi"])
def test_empty_tag(source):
    p = only_problem(source)
    assert "empty speaker tag" in p.message and p.column == 1


@pytest.mark.parametrize(
    "source, col, words",
    [
        ("[A] hi [A/B] hi", 8, ['"/"', "letters, digits"]),
        ("[A] hi [" + "x" * 33 + "] hi", 8, ["33 characters", "at most 32"]),
        ("[A] hi [...] hi", 8, ["no letters or digits"]),
    ],
)
def test_invalid_tag_names(source, col, words):
    p = only_problem(source)
    assert (p.line, p.column) == (1, col)
    assert all(w in str(p) for w in words), str(p)


@pytest.mark.parametrize("source", ["[A] hi [pause 3x] there", "[A] hi [pause -1s] there", "[A] hi [pause 2 min] x"])
def test_malformed_pause(source):
    p = only_problem(source)
    assert p.column == 8 and "pause length" in p.message
    assert "[pause 800ms]" in p.expected


def test_pause_too_long():
    p = only_problem("[A] hi\n[pause 45s]\n[B] there")
    assert (p.line, p.column) == (2, 1)
    assert "45-second" in p.message and "30-second" in p.message


@pytest.mark.parametrize(
    "source, line, col, tag",
    [
        ("[A]\n[B] hi", 1, 1, "[A]"),
        ("[A] hi\n  [B] (laughs) [pause]\n[A] ok", 2, 3, "[B]"),
        ("[A] hi\nSpeaker 2:", 2, 1, "Speaker 2:"),
    ],
)
def test_tag_without_text(source, line, col, tag):
    p = only_problem(source)
    assert (p.line, p.column) == (line, col)
    assert f'tag "{tag}" has no text' in p.message


def test_too_many_speakers():
    source = "[A] a\n[B] b\n[C] c\n[D] d\n[A] a\n\n[Eve] e\n[Frank] f\n[Eve] again"
    found = problems(source)
    assert [str(p) for p in found] == [
        'line 7, column 1: speaker "Eve" would be a 5th speaker; at most 4 speakers per script '
        "(expected: one of A, B, C, D)",
        'line 8, column 1: speaker "Frank" would be a 6th speaker; at most 4 speakers per script '
        "(expected: one of A, B, C, D)",
    ]
    p = only_problem("[A] a [b] b [C] c", max_speakers=2)
    assert (p.column, p.expected) == (13, "one of A, b") and "at most 2 speakers" in p.message


def test_text_before_first_tag():
    p = only_problem("# intro\nWelcome everyone.\nMore.\n[A] hi")
    assert (p.line, p.column) == (2, 1) and "before the first speaker tag" in p.message


@pytest.mark.parametrize(
    "source, col, words",
    [
        ("[A] hi (laughs", 8, ['"(" is never closed']),
        ("[A] hi {excited", 8, ['"{" is never closed']),
        ("[A] hi laughs) ok", 14, ['")" has no matching']),
        ("[A] hi excited} ok", 15, ['"}" has no matching']),
        ("[A] hi (laughs} ok", 15, ['"}" does not close the "(" at column 8']),
        ("[A] hi [B ok", 8, ['"[" is never closed']),
        ("[A] hi B] ok", 9, ['"]" has no matching']),
    ],
)
def test_unbalanced_brackets(source, col, words):
    p = only_problem(source)
    assert (p.line, p.column) == (1, col)
    assert all(w in p.message for w in words), p.message


def test_hints_do_not_span_lines():
    opened, closed = problems("[A] hi (laughs\nloudly) ok")
    assert (opened.line, opened.column) == (1, 8) and opened.message.startswith('"(" is never closed')
    assert (closed.line, closed.column) == (2, 7) and "no matching" in closed.message


@pytest.mark.parametrize("source", ["", "   \n\t\n", "# just a comment\n\n# another", "[pause]", "(laughs)"])
def test_empty_script(source):
    p = only_problem(source)
    assert (p.line, p.column) == (1, 1) and "empty" in p.message


def test_invalid_utf8_bytes():
    p = only_problem(b"[A] hi\r\n[B] ok \xff\xfe more")
    assert (p.line, p.column) == (2, 8) and "0xFF" in p.message and "UTF-8" in p.message


@pytest.mark.parametrize("bad", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\ud800"])
def test_control_characters(bad):
    p = only_problem(f"[A] hi\n[B] o{bad}k [C")
    assert (p.line, p.column) == (2, 6) and f"U+{ord(bad):04X}" in p.message


def test_ten_megabyte_paste_is_refused():
    p = only_problem("[A] " + "x" * 10_000_000)
    assert f"{MAX_SCRIPT_BYTES:,}" in p.message and "10,000,004 bytes" in p.message
    assert f"{MAX_SCRIPT_BYTES:,}" in only_problem(b"\xff" * 10_000_000).message


def test_size_counts_utf8_bytes():
    p = only_problem("[A] " + "好" * (MAX_SCRIPT_BYTES // 3))
    assert "limit" in p.message


def test_estimated_duration_limit():
    p = only_problem("[A] short\n[B] " + "word " * 70_000)
    assert (p.line, p.column) == (2, 5)
    assert "about 90 minutes" in p.message and "389 minutes" in p.message
    assert MAX_SPEECH_SECONDS == 90 * 60


def test_all_problems_are_reported_in_order():
    source = "hello\n[] x\n[A/B] y\n[A] hi (oops\n[pause 9x]\n[B]"
    found = problems(source)
    assert [(p.line, p.column) for p in found] == [(1, 1), (2, 1), (3, 1), (4, 8), (5, 1), (6, 1)]
    assert str(ScriptError(found)).count("\n") == len(found) - 1


def test_problem_string_format():
    assert str(Problem(line=3, column=1, message="oops")) == "line 3, column 1: oops"


# --- properties ----------------------------------------------------------------------------------


def check_outcome(source) -> None:
    try:
        script = parse_script(source)
    except ScriptError as err:
        assert err.problems
        assert all(p.line >= 1 and p.column >= 1 for p in err.problems)
        return
    assert script.lines
    for i, line in enumerate(script.lines):
        assert line.index == i and line.text and line.text == line.text.strip()
        assert line.speaker in script.speakers


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_parses_or_raises_script_error(source):
    check_outcome(source)


@settings(max_examples=200, deadline=None)
@given(st.binary())
def test_any_bytes_parse_or_raise_script_error(source):
    check_outcome(source)


_PIECES = st.sampled_from(
    ["[A]", "[B]", "【小明】", "Speaker 1:", "\n", "\n\n", " ", "hello", "你好", "(laughs)", "{x}", "（笑）",
     "[pause]", "[pause 2s]", "[pause 9x]", "# c\n", "(", ")", "[", "]", "[]", "[C]", "[D]", "[E]", ":"]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_PIECES, max_size=30).map("".join))
def test_script_like_text_parses_or_raises_script_error(source):
    check_outcome(source)

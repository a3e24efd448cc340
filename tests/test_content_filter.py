"""The content filter: severe lines block before rendering, milder ones are flagged, look-alikes pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

from vibevoice import audit, paths
from vibevoice.content_filter import USER_FILE, ContentBlocked, RulesError, check, enforce, parse_rules
from vibevoice.job.model import RenderSettings
from vibevoice.job.runner import Job
from vibevoice.script import parse_script
from vibevoice.voices import load_templates


def findings(text: str, mode: str = "block"):
    return check(parse_script(text), mode)


# Block means what a careful editor would stop in any script: a threat with a target and a means,
# place or time; instructions for a weapon or a killing; sexual content involving minors; urging the
# listener to harm themselves (issue 12). The first four threats were bare ("I'm going to kill you,
# Tom.") before issue 12; bare, they are now flagged (see the literature test below).
@pytest.mark.parametrize("line, category", [
    ("I'm going to kill you tomorrow, Tom.", "violent-threat"),
    ("I’ll hurt your family with a knife if you talk.", "violent-threat"),  # curly apostrophe
    ("I know where you live and I will shoot you.", "violent-threat"),
    ("There's a bomb in the train station.", "violent-threat"),
    ("I'm going to shoot up the school on Friday.", "violent-threat"),
    ("Here's how to make a pipe bomb: you will need a pipe.", "weapon-instructions"),
    ("Instructions for making a bomb were found. Here is how to make a bomb, you will need a pipe.",
     "weapon-instructions"),  # a report first does not excuse the recipe after it
    ("How to poison your husband slowly: a little every day.", "weapon-instructions"),
    ("You should kill yourself.", "self-harm-encouragement"),
    ("Why don't you just kill yourself, loser.", "self-harm-encouragement"),
    ("Nobody would miss you.", "self-harm-encouragement"),
    ("The kids were naked in the photo he sent.", "child-sexual-content"),
    ("I want to have sex with a little girl.", "child-sexual-content"),
    ("我要用刀杀了你！", "violent-threat"),
    ("学校里有炸弹。", "violent-threat"),
    ("教你怎么自制炸弹。", "weapon-instructions"),
    ("出售幼女色情视频。", "child-sexual-content"),
    ("你去死吧。", "self-harm-encouragement"),
    ("你应该从楼上跳下去。", "self-harm-encouragement"),
])
def test_severe_lines_are_blocked_with_line_and_category(line, category):
    script = parse_script(f"[A] Good morning.\n[B] {line}\n")
    with pytest.raises(ContentBlocked) as caught:
        enforce(script, "block")
    (finding,) = [f for f in caught.value.findings if f.action == "block"]
    assert (finding.line, finding.speaker, finding.category, finding.severity) == (2, "B", category, "severe")
    assert finding.matched in line and finding.source.startswith("presets/content-filter/")
    message = str(caught.value)
    assert "line 2" in message and category in message and "[allow]" in message


@pytest.mark.parametrize("line, category", [
    ("What the fuck is this?", "profanity"),
    ("他妈的，又迟到了。", "profanity"),
    ("Hello, this is your bank calling. Read me the code we just sent.", "fraud-impersonation"),
    ("安全账户里的钱马上转过去。", "fraud-impersonation"),
])
def test_milder_categories_are_flagged_not_blocked(line, category):
    script = parse_script(f"[A] {line}\n")
    flags = enforce(script, "block")  # does not raise
    assert flags and {f.category for f in flags} == {category} and {f.action for f in flags} == {"flag"}


@pytest.mark.parametrize("line", [
    "Kill the lights, please, the film is starting.",
    "This app is a killer feature.",
    "I'll shoot you an email after lunch.",
    "Shoot me a message when you land.",
    "We're going to shoot the film in June.",
    "Don't kill yourself over it, it's only a draft.",
    "Breast cancer screening saves lives.",
    "The patient was given a lethal dose in the story, and the detective noticed.",
    "Our new episode will kill it at the festival.",
    "The hurricane will hit the coast tomorrow.",
    "请把灯关掉，电影开始了。",
    "这个应用真是杀手级的功能。",
    "The dead battery killed the car.",
    "Children need sleep, and naked flames are dangerous near them.",
    "Police said instructions for making a bomb were found in the flat.",  # the news, not a recipe
    "Investigators found instructions for building explosives on his laptop.",
])
def test_benign_look_alikes_are_not_reported(line):
    assert findings(f"[A] {line}\n") == []


@pytest.mark.parametrize("line, category", [
    # issue 12: lines of literature and quotations the old rules blocked
    ("You're dead, Jim. -- McCoy, \"Amok Time\"", "violent-threat"),
    ("You have all eternity to be cautious in when you're dead.", "violent-threat"),
    ("Albert Camus wrote that the only serious question is whether to kill yourself or not.",
     "self-harm-encouragement"),
    ("Naked children have never played in our fountains, and I.M. Pei will never redesign Boston.",
     "child-sexual-content"),
    ("Gladstone said to Disraeli, \"I predict, Sir, that you will die either by hanging or of some vile disease\".",
     "violent-threat"),
    ("And my wrath shall wax hot, and I will kill you with the sword.", "violent-threat"),  # Exodus 22:24
    ("Unix gives you just enough rope to hang yourself.", "self-harm-encouragement"),
    # a villain's threat without a means, place or time (blocked before issue 12)
    ("I'm going to kill you, Tom.", "violent-threat"),
    ("I know where you live.", "violent-threat"),
    ("我要杀了你！", "violent-threat"),
])
def test_literature_and_villains_are_flagged_with_the_line_not_blocked(line, category):
    flags = enforce(parse_script(f"[A] Chapter one.\n[B] {line}\n"), "block")  # does not raise
    assert [(f.line, f.category, f.severity, f.action) for f in flags] == [(2, category, "high", "flag")]


@pytest.mark.parametrize("line", [
    "You just wait, I'll sin till I blow up! -- Dylan Thomas",
    "He'll be late, she'll be early, we'll be on time.",
    "She’ll see the shell on the shore.",
    "Be careful not to cut yourself on the shell.",
    "How to Get Away with Murder starts at nine.",
])
def test_literature_look_alikes_are_not_reported(line):
    assert findings(f"[A] {line}\n") == []


def test_contractions_are_not_profanity_but_the_word_still_is():
    (hell,) = findings("[A] He'll say: what the hell.\n")
    assert (hell.category, hell.matched, hell.action) == ("profanity", "hell", "flag")


def test_one_finding_per_phrase_the_most_severe():
    (finding,) = findings("[A] I know where you live and I will shoot you.\n", "flag")
    assert (finding.category, finding.severity, finding.action) == ("violent-threat", "severe", "flag")


def test_modes_flag_and_off():
    text = "[A] I will kill you.\n[B] What the fuck.\n"
    flagged = findings(text, "flag")
    assert {f.action for f in flagged} == {"flag"} and {f.category for f in flagged} == {"violent-threat", "profanity"}
    assert findings(text, "off") == []


def test_a_blocked_script_writes_nothing_and_is_audited(tmp_path):
    voices = load_templates()
    with pytest.raises(ContentBlocked):
        Job.create(tmp_path / "job", "[A] I am going to stab you tonight.\n", {"A": voices["deep-male"]},
                   RenderSettings(content_filter="block"))
    assert not (tmp_path / "job").exists()
    last = audit.read(1)[0]
    assert last["event"] == "job.blocked" and "violent-threat" in last["findings"][0]
    assert "stab" not in json.dumps(last["script_sha256"])  # the log keeps a hash, never the text


def test_flagged_lines_are_recorded_in_the_job(tmp_path):
    job = Job.create(tmp_path / "job", "[A] Hello.\n[B] Damn, that hurt.\n",
                     {"A": load_templates()["deep-male"], "B": load_templates()["bright-female"]})
    assert [(f.line, f.category) for f in job.manifest.content_flags] == [(2, "profanity")]
    assert Job.open(tmp_path / "job").manifest.content_flags == job.manifest.content_flags


def test_user_file_adds_rules_and_exceptions(app_home):
    user = paths.home() / USER_FILE
    try:
        user.write_text("[deny spoilers: severe]\nthe butler did it\n[allow]\nwhat the fuck\n", "utf-8")
        (blocked,) = findings("[A] Everyone knows the butler did it.\n")
        assert (blocked.category, blocked.action, blocked.source) == ("spoilers", "block", f"{USER_FILE}:2")
        assert findings("[A] What the fuck, Gary?\n") == []
    finally:
        user.unlink()
    assert findings("[A] Everyone knows the butler did it.\n") == []


def test_rule_files_report_their_own_mistakes():
    with pytest.raises(RulesError, match="x.txt:2: unknown group \\$nobody"):
        parse_rules("[deny x: severe]\n$nobody hurts\n", "en", "x.txt")
    with pytest.raises(RulesError, match="x.txt:1: expected \\[allow\\]"):
        parse_rules("[deny x: awful]\n", "en", "x.txt")


def test_every_shipped_list_parses():
    for path in (paths.PRESETS_DIR / "content-filter").glob("*.txt"):
        rules = parse_rules(path.read_text("utf-8"), path.stem, path.name)
        assert rules.rules


def test_cli_refuses_a_blocked_script_and_check_lists_findings(tmp_path):
    script = tmp_path / "s.txt"
    script.write_text("[A] Hi.\n[B] I will shoot you tomorrow.\n", "utf-8")
    result = run_cli("render", str(script), "-o", str(tmp_path / "o.mp3"), "--job-dir", str(tmp_path / "job"))
    assert result.returncode == 2 and "line 2, column 5: blocked as violent-threat" in result.stderr
    assert not Path(tmp_path / "job").exists()
    checked = run_cli("check", str(script))
    assert checked.returncode == 2 and "blocked as violent-threat" in checked.stderr

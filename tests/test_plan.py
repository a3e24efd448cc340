"""The plan schema, checking plans against the script, the rules planner and the fallbacks (no model needed)."""

from __future__ import annotations

import json
import sys

import pytest
import typer
from pydantic import ValidationError
from typer.testing import CliRunner

from vibevoice.cli.plan import plan_command
from vibevoice.errors import BadInput
from vibevoice.plan import PLANNERS, LinePlan, Plan, PlanError, PlannerSettings, load_plan, make_plan, rules
from vibevoice.plan.base import blocks
from vibevoice.script import parse_script

DIALOGUE = parse_script("""\
[Alice] Welcome back to the show. Do you think AI can write novels?
[Ben] (laughs) Sure, once it learns to tell stories.
[Alice] {skeptical} Then we will wait a little longer.
[小王] 你今天怎么这么开心？
""")


def rules_of(script_text: str):
    script = parse_script(script_text)
    return script, rules.plan_script(script)


# -- schema ---------------------------------------------------------------------------------------

def test_plan_round_trips_through_json():
    plan = make_plan(DIALOGUE, "rules")
    again = Plan.model_validate_json(plan.model_dump_json())
    assert again == plan
    assert again.version == 1 and again.planner == "rules"
    assert [lp.line_index for lp in again.lines] == [0, 1, 2, 3]


@pytest.mark.parametrize("field, value", [("intensity", 1.5), ("rate", 2.0), ("emotion", "furious"),
                                          ("sentence_type", "command"), ("pause_after", -1), ("line_index", -1)])
def test_line_plan_refuses_values_outside_the_schema(field, value):
    with pytest.raises(ValidationError):
        LinePlan.model_validate({"line_index": 0, field: value})


def test_planner_names():
    assert PLANNERS == ("rules", "local", "http")
    with pytest.raises(ValueError, match="unknown planner"):
        make_plan(DIALOGUE, "gpt-9")


# -- load_plan: a plan changes delivery only -----------------------------------------------------

def edited_plan(**changes) -> dict:
    doc = json.loads(make_plan(DIALOGUE, "rules").model_dump_json())
    for index, fields in changes.items():
        doc["lines"][int(index.removeprefix("line"))].update(fields)
    return doc


def test_load_plan_accepts_an_unchanged_and_an_edited_plan():
    doc = edited_plan(line0={"emotion": "happy", "rate": 1.1, "emphasis": ["novels"]})
    plan = load_plan(json.dumps(doc), DIALOGUE)
    assert plan.fallbacks == {}
    assert plan.lines[0].emotion == "happy" and plan.lines[0].rate == 1.1 and plan.lines[0].emphasis == ["novels"]
    assert plan.lines[1:] == make_plan(DIALOGUE, "rules").lines[1:]


def test_load_plan_tolerates_text_and_speaker_equal_to_the_script():
    doc = edited_plan(line1={"text": "Sure, once it learns to tell  stories.", "speaker": "Ben", "emotion": "happy"})
    plan = load_plan(doc, DIALOGUE)
    assert plan.fallbacks == {} and plan.lines[1].emotion == "happy"


@pytest.mark.parametrize("fields, reason", [
    ({"text": "Something else entirely."}, "words"),
    ({"speaker": "Ben"}, "speaker"),
    ({"emphasis": ["zebra"]}, "emphasis word 'zebra'"),
    ({"emotion": "furious"}, "emotion"),
    ({"intensity": 3}, "intensity"),
    ({"voice": "deep-male"}, "unknown field 'voice'"),
])
def test_load_plan_rejects_a_bad_line_and_keeps_the_others(fields, reason):
    doc = edited_plan(line0=fields, line2={"emotion": "calm"})
    plan = load_plan(doc, DIALOGUE)
    assert list(plan.fallbacks) == [0] and reason in plan.fallbacks[0]
    assert plan.lines[0] == rules.plan_line(DIALOGUE, 0)  # the rejected line is planned by rules
    assert plan.lines[2].emotion == "calm"  # the rest of the plan stands


def test_load_plan_ignores_lines_that_do_not_exist_and_fills_missing_ones():
    doc = edited_plan()
    doc["lines"].append({"line_index": 42, "emotion": "sad"})
    doc["lines"].append({"line_index": "x", "emotion": "sad"})
    del doc["lines"][3]
    plan = load_plan(doc, DIALOGUE)
    assert len(plan.lines) == 4 and [lp.line_index for lp in plan.lines] == [0, 1, 2, 3]
    assert plan.fallbacks == {3: "missing from the plan"}


def test_load_plan_rejects_two_entries_for_one_line():
    doc = edited_plan()
    doc["lines"].append({"line_index": 1, "emotion": "sad"})
    plan = load_plan(doc, DIALOGUE)
    assert "more than one entry" in plan.fallbacks[1]


@pytest.mark.parametrize("data, message", [("not json", "not valid JSON"), ("[1, 2]", "JSON object"),
                                           ('{"version": 99, "lines": []}', "version 99"),
                                           ('{"planner": "x"}', '"lines" list')])
def test_load_plan_refuses_documents_that_are_not_plans(data, message):
    with pytest.raises(PlanError, match=message):
        load_plan(data, DIALOGUE)


# -- rules ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, emotion", [
    ("[A] (laughs) That is the best thing I heard all week.", "amused"),
    ("[A] (laughing nervously) Right.", "amused"),  # the first direction written wins
    ("[A] {excited} We leave tomorrow.", "excited"),
    ("[A] (angrily) Give it back.", "angry"),
    ("[A] (sighs) It is late.", "sad"),
    ("[A] (nervously) Is someone there?", "fearful"),
    ("[A] Haha, you fell for it.", "amused"),
    ("[A] Wow, look at that.", "surprised"),
    ("[A] The train leaves at six.", "neutral"),
    ("[小明] （笑）你又迟到了。", "amused"),
    ("[小明] （生气）你怎么又这样？", "angry"),
    ("[小明] （叹气）算了吧。", "sad"),
    ("[小明] 哈哈，你上当了。", "amused"),
    ("[小明] 我好害怕。", "fearful"),
    ("[小明] 明天八点开会。", "neutral"),
])
def test_rules_read_hints_and_unmistakable_words(line, emotion):
    _, plans = rules_of(line)
    assert plans[0].emotion == emotion


@pytest.mark.parametrize("text, kind", [
    ("Do you think so?", "question"), ("Really?!", "question"), ("Stop it!", "exclamation"),
    ("I think so.", "statement"), ("Where are you going", "question"), ("\"Are you sure?\"", "question"),
    ("Well... maybe?", "question"), ("I wonder...", "statement"), ("Hi! Glad you came.", "statement"),
    ("你吃饭了吗？", "question"), ("你吃饭了吗", "question"), ("你吃饭了吗。", "question"),
    ("你呢", "question"), ("我在想呢。", "statement"), ("我们走吧。", "statement"), ("是你吧", "question"),
    ("太好了！", "exclamation"), ("这是什么？！", "question"), ("明天见。", "statement"), ("好吧……", "statement"),
])
def test_rules_sentence_type_in_english_and_mandarin(text, kind):
    assert rules.sentence_type(text) == kind


def test_rules_pauses_rate_and_emphasis():
    _, plans = rules_of("[A] I thought... never mind...\n[B] But I—\n[A] I said NEVER, and I *meant* it!\n"
                             "[B] (whispers) They are here.\n[A] (excited) We won the cup!!\n")
    trailing, cut, shout, whisper, excited = plans
    assert trailing.pause_after == 0.7 and cut.pause_after == 0.0 and shout.pause_after is None
    assert shout.emphasis == ["meant", "NEVER"] and shout.sentence_type == "exclamation"
    assert whisper.emotion == "neutral" and whisper.rate < 1.0 and whisper.intensity < 0.3
    assert excited.rate > 1.05 and excited.intensity > 0.7


def test_rules_are_deterministic_and_valid_for_every_line():
    plan = make_plan(DIALOGUE, "rules")
    assert plan == make_plan(DIALOGUE, "rules")
    assert [lp.emotion for lp in plan.lines] == ["neutral", "amused", "skeptical", "happy"]
    assert [lp.sentence_type for lp in plan.lines] == ["question", "statement", "statement", "question"]


# -- fallbacks: make_plan never raises for a planner that cannot run ------------------------------

def test_local_planner_without_its_model_falls_back_to_rules(tmp_path):
    settings = PlannerSettings(model=str(tmp_path / "no-such-model"), cache_dir=tmp_path)
    plan = make_plan(DIALOGUE, "local", settings=settings)
    assert plan.planner == "local" and set(plan.fallbacks) == {0, 1, 2, 3}
    assert "local planner unavailable" in plan.fallbacks[0] and "no-such-model" in plan.fallbacks[0]
    assert plan.lines == make_plan(DIALOGUE, "rules").lines


def test_auto_uses_rules_when_the_local_model_does_not_load(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "not-a-real-architecture"}')
    calls = []
    plan = make_plan(DIALOGUE, settings=PlannerSettings(model=str(broken), cache_dir=tmp_path),
                     progress=lambda done, total: calls.append((done, total)))
    assert plan.planner == "rules" and len(plan.fallbacks) == 4
    assert "cannot load broken-model" in plan.fallbacks[0]
    assert calls[-1] == (4, 4)


def test_http_planner_without_an_endpoint_falls_back_to_rules(tmp_path, monkeypatch):
    monkeypatch.delenv("VIBEVOICE_PLANNER_URL", raising=False)
    plan = make_plan(DIALOGUE, "http", settings=PlannerSettings(cache_dir=tmp_path))
    assert plan.planner == "http" and "no endpoint configured" in plan.fallbacks[0]


def test_settings_read_the_environment_and_hide_the_key(monkeypatch):
    monkeypatch.setenv("VIBEVOICE_PLANNER_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("VIBEVOICE_PLANNER_HTTP_MODEL", "llama3.2")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    settings = PlannerSettings()
    assert settings.http_url == "http://127.0.0.1:1/v1" and settings.http_model == "llama3.2"
    assert "sk-secret" not in repr(settings) and "sk-secret" not in settings.model_dump_json()
    assert settings.http_api_key.get_secret_value() == "sk-secret"


# -- blocks: inserting a line moves only nearby block boundaries ----------------------------------

def test_block_boundaries_follow_content_not_line_numbers():
    texts = [f"[{'AB'[i % 2]}] Line number {i} says something different each time." for i in range(60)]
    before = parse_script("\n".join(texts))
    after = parse_script("\n".join(texts[:5] + ["[A] A new line nobody expected."] + texts[5:]))
    starts = lambda script: {script.lines[b.start].text for b in blocks(script, 8)}
    assert all(len(b) <= 16 for b in blocks(before, 8)) and sum(map(len, blocks(before, 8))) == 60
    shared = starts(before) & starts(after)
    assert len(shared) >= len(starts(before)) - 2  # boundaries after the insertion are where they were


# -- the command ----------------------------------------------------------------------------------

def test_plan_command_prints_a_table_and_json(tmp_path):
    app = typer.Typer()
    app.command()(plan_command)
    script = tmp_path / "s.txt"
    script.write_text("[Alice] (laughs) Hello there!\n[Ben] 你好吗？\n", encoding="utf-8")
    runner = CliRunner()
    table = runner.invoke(app, [str(script), "--planner", "rules"])
    assert table.exit_code == 0, table.output
    assert "amused" in table.output and "exclamation" in table.output and "Ben" in table.output
    as_json = runner.invoke(app, [str(script), "--planner", "rules", "--json"])
    assert as_json.exit_code == 0
    plan = Plan.model_validate_json(as_json.stdout)
    assert [lp.sentence_type for lp in plan.lines] == ["exclamation", "question"]
    bad = runner.invoke(app, [str(tmp_path / "missing.txt"), "--planner", "rules"])
    assert bad.exit_code == 2


def test_the_director_in_a_child_process_plans_the_same_and_reports_progress():
    """The local director runs in a child so its memory leaves with it; what comes back is the plan the
    same planner makes in-process, and progress arrives line by line."""
    from vibevoice.plan import process

    script = parse_script("[A] (laughs) That was brilliant!\n[B] Was it? I am not so sure.\n[A] Come on.\n")
    seen = []
    plan = process.plan_in_child(script, "rules", progress=lambda done, total: seen.append((done, total)))
    assert plan == make_plan(script, "rules")
    assert seen and seen[-1] == (3, 3)
    with pytest.raises(BadInput, match="unknown planner"):
        process.plan_in_child(script, "oracle")


def test_a_director_process_that_dies_costs_the_plan_not_the_job(monkeypatch):
    from vibevoice.plan import process

    process.stop()  # a director left running by an earlier test would answer
    monkeypatch.setattr(process, "CHILD", [sys.executable, "-c", "import os; os._exit(9)"])
    script = parse_script("[A] Hello there.\n[B] Hi!\n")
    plan = process.plan_in_child(script, "local")
    assert plan.planner == "rules" and plan.lines == make_plan(script, "rules").lines
    assert plan.fallbacks == {0: "the director's process ended without a plan (exit code 9)",
                              1: "the director's process ended without a plan (exit code 9)"}
    process.stop()


def test_the_director_process_stays_for_the_next_plan_then_leaves_when_idle(monkeypatch):
    from vibevoice.plan import process

    process.stop()
    script = parse_script("[A] Hello there.\n[B] Hi!\n")
    process.plan_in_child(script, "rules")
    first = process._child[0].pid
    process.plan_in_child(script, "rules")
    assert process.alive() and process._child[0].pid == first  # the same process answered again
    process.stop()
    monkeypatch.setenv("VIBEVOICE_DIRECTOR_IDLE", "0.5")
    process.plan_in_child(script, "rules")
    child = process._child[0]
    assert child.wait(timeout=30) == 0 and not process.alive()  # idle: gone, with all its memory
    assert process.plan_in_child(script, "rules") == make_plan(script, "rules")  # a new one comes when asked
    process.stop()

"""The transcript's table ↔ plan round trip: what the user changed is theirs, what they left is the director's."""

from __future__ import annotations

from ui import transcript
from vibevoice import delivery
from vibevoice.script import parse_script

SCRIPT = "[A] (laughs) That is the funniest thing all week!\n[B] We lost the match.\n[A] Really?\n"


def test_unchanged_rows_keep_the_directors_source_and_edits_become_the_users():
    script = parse_script(SCRIPT)
    plan = delivery.direct(script, "rules")
    rows = transcript.rows_for(script, plan)
    assert [r[2] for r in rows] == [line.text for line in script.lines] and all(r[8] == "" for r in rows)
    rows[1][3] = "sad"  # the user changes line 2's emotion
    back = transcript.plan_from({"headers": transcript.COLUMNS, "data": rows}, script, plan.model_dump(mode="json"))
    assert back.lines[1].emotion == "sad" and back.lines[1].emotion_source == "user"
    assert back.lines[0].emotion == plan.lines[0].emotion and back.lines[0].emotion_source == plan.lines[0].emotion_source
    assert back.lines[2].emotion_source == plan.lines[2].emotion_source


def test_a_table_for_another_script_is_not_used():
    script = parse_script(SCRIPT)
    rows = transcript.rows_for(script, delivery.direct(script, "rules"))
    rows[0][2] = "Different words."
    assert transcript.plan_from({"headers": transcript.COLUMNS, "data": rows}, script) is None

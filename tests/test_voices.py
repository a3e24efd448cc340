"""Voice templates: validation, distinct defaults, and user templates that survive a restart."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT
from pydantic import ValidationError

from vibevoice.voices import KokoroSpec, VoiceError, VoiceTemplate, assign_voices, load_templates, save_template


def test_defaults_are_distinct_and_follow_language():
    templates = load_templates()
    chosen = assign_voices(["A", "B", "C", "D"], {"D": {"zh"}}, {}, templates)
    assert len({v.id for v in chosen.values()}) == 4
    assert "zh" in chosen["D"].languages
    assert chosen["A"].id == "deep-male" and chosen["B"].id == "bright-female"


def test_requested_voice_wins_and_is_matched_case_insensitively():
    chosen = assign_voices(["Alice", "Ben"], {}, {"alice": "light-female"}, load_templates())
    assert chosen["Alice"].id == "light-female" and chosen["Ben"].id != "light-female"


def test_request_for_a_missing_speaker_is_an_error():
    with pytest.raises(VoiceError, match="no speaker 'Carol'"):
        assign_voices(["Alice"], {}, {"Carol": "deep-male"}, load_templates())


def test_blend_weights_must_add_up():
    with pytest.raises(ValidationError, match="add up to 1.0"):
        KokoroSpec(blend=[{"voice": "jm_kumo", "weight": 0.5}, {"voice": "jf_alpha", "weight": 0.2}])


def test_saved_template_survives_a_restart():
    mine = VoiceTemplate(id="my-narrator", name="My narrator", engine="kokoro", languages=["en"],
                         spec={"kind": "kokoro", "blend": [{"voice": "jm_kumo", "weight": 0.5},
                                                           {"voice": "jf_gongitsune", "weight": 0.5}]}, speed=0.9)
    save_template(mine)
    listed = subprocess.run([sys.executable, "-m", "vibevoice.cli", "voices"], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert "my-narrator" in listed.stdout
    assert load_templates()["my-narrator"].speed == 0.9

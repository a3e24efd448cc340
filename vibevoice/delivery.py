"""Where a line's delivery plan meets the engine: emotion, rate and pauses applied to one line.

The director (``plan/``) decides how a line should sound; this module turns that into what an engine
can do, and reports what it cannot, instead of dropping it silently:
- **emotion** → the speaker's voice variant for that emotion, when the template defines one
  (``VoiceTemplate.emotions``, e.g. a brighter blend for "excited"); otherwise the plain voice;
- **rate** → a speed factor on top of the voice's and the job's speed;
- **pauses** → silence before/after the line, laid out by ``export``; a ``[pause]`` written in the
  script always wins over the plan;
- **emphasis** and the free-text note are shown to the user but no embedded engine can stress a word.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .engines.base import Capabilities
from .plan.schema import LinePlan, Plan
from .script import Script
from .voices import VoiceTemplate

NO_PLANNER = "none"


def default_planner() -> str:
    """``VIBEVOICE_PLANNER`` (auto, rules, local, http or none); "auto" = the local LLM if it loads."""
    return os.environ.get("VIBEVOICE_PLANNER", "auto")


def direct(script: Script, planner: str, speaker_hints: dict[str, str] | None = None,
           progress: Callable[[int, int], None] | None = None) -> Plan | None:
    """Ask the director for a plan; a speaker's emotion hint from the page joins each of their lines' hints."""
    if planner == NO_PLANNER:
        return None
    from .plan import make_plan

    if speaker_hints:
        lines = [line.model_copy(update={"hints": [*line.hints, speaker_hints[line.speaker]]})
                 if speaker_hints.get(line.speaker) else line for line in script.lines]
        script = script.model_copy(update={"lines": lines})
    return make_plan(script, planner, progress=progress)


def line_voice(voice: VoiceTemplate, plan: LinePlan | None) -> VoiceTemplate:
    """The template to speak this line with: the emotion variant if the user defined one."""
    if plan is None or plan.emotion not in voice.emotions:
        return voice
    return voice.model_copy(update={"spec": voice.emotions[plan.emotion]})


def line_speed(voice: VoiceTemplate, job_speed: float, plan: LinePlan | None) -> float:
    return voice.speed * job_speed * (plan.rate if plan else 1.0)


def line_plans(plan: Plan | None) -> dict[int, LinePlan]:
    return {p.line_index: p for p in plan.lines} if plan else {}


def unsupported(plan: Plan | None, voices: dict[str, VoiceTemplate], speakers: dict[int, str],
                capabilities: dict[str, Capabilities]) -> list[str]:
    """One message per line whose plan asks for something its engine or voice cannot deliver."""
    notes = []
    for item in plan.lines if plan else []:
        voice = voices[speakers[item.line_index]]
        honoured = capabilities[voice.engine].plan_fields
        if item.emotion != "neutral" and item.emotion not in voice.emotions and "emotion" not in honoured:
            notes.append(f"line {item.line_index + 1}: emotion {item.emotion!r} has no variant in voice {voice.id!r}")
        if item.emphasis and "emphasis" not in honoured:
            notes.append(f"line {item.line_index + 1}: the {voice.engine} engine cannot stress {item.emphasis}")
    return notes

"""Where a line's delivery plan meets the engine: the typed ``LineDelivery`` of one line, and what
cannot be performed.

The director (``plan/``) decides how a line should sound; this module turns a ``LinePlan`` into the
delivery an engine reads, and reports (never silently drops) what the engine cannot perform:
- **emotion** → the speaker's voice variant for that emotion when the template defines one
  (``VoiceTemplate.spec_for``), and/or the emotion's prosody recipe (``prosody``: pitch, range,
  energy, pauses from ``presets/emotions.toml``) for engines that perform it (Kokoro), at a strength
  that follows the emotion's source: hints in full, the director's guesses as far as they are reliable;
- **rate** → a speed factor on top of the voice's and the job's speed;
- **pauses** → silence before/after the line, laid out by ``export`` for line-by-line jobs; a
  ``[pause]`` written in the script always wins over the plan;
- **emphasis** and the free-text note reach engines that can use them and are reported otherwise.

A leaf under the plan schema: engines import ``LineDelivery`` from here, so this imports no engine.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from . import prosody
from .plan.schema import LinePlan, Plan
from .prosody import Prosody
from .script import Script
from .voices import VoiceTemplate

NO_PLANNER = "none"
TIMELINE_FIELDS = frozenset({"pause_before", "pause_after"})  # performed by the job's timeline, not the engine
MAX_LINES_NAMED = 12  # a note names this many lines, then says how many more


@dataclass(frozen=True)
class LineDelivery:
    """How one line is performed: the engine reads these fields, the job reports those it cannot do."""

    speed: float = 1.0  # the voice's speed × the job's speed × the plan's rate
    emotion: str | None = None  # None or "neutral": a plain read
    intensity: float = 0.0
    pause_before: float | None = None  # seconds; None = the natural gap
    pause_after: float | None = None
    emphasis: tuple[str, ...] = ()  # words of the line; the engine finds their phoneme spans
    note: str = ""
    # The emotion's recipe as performed (pitch shift, range, energy, question rise, emphasis amounts).
    prosody: Prosody = Prosody()
    strength: float = 0.0  # how much of the emotion's recipe is performed (1 = in full)


def default_planner() -> str:
    """``VIBEVOICE_PLANNER`` (auto, rules, local, http or none); "auto" = the local LLM if it loads."""
    return os.environ.get("VIBEVOICE_PLANNER", "auto")


def direct(script: Script, planner: str, speaker_hints: dict[str, str] | None = None,
           progress: Callable[[int, int], None] | None = None,
           on_line: Callable[[LinePlan], None] | None = None) -> Plan | None:
    """Ask the director for a plan; a speaker's emotion hint from the page joins each of their lines' hints.
    ``on_line`` hears each line's plan as soon as it is final (``plan.make_plan``)."""
    if planner == NO_PLANNER:
        return None
    from .plan import make_plan, process, release_models  # the planners load language models: only when asked for

    if speaker_hints:
        lines = [line.model_copy(update={"hints": [*line.hints, speaker_hints[line.speaker]]})
                 if speaker_hints.get(line.speaker) else line for line in script.lines]
        script = script.model_copy(update={"lines": lines})
    if process.wanted(planner):  # a local model's memory leaves with its process (plan/process.py)
        return process.plan_in_child(script, planner, progress, on_line)
    try:
        return make_plan(script, planner, progress=progress, on_line=on_line)
    finally:
        release_models()


def line_delivery(voice: VoiceTemplate, job_speed: float, plan: LinePlan | None) -> LineDelivery:
    """The delivery of one line spoken by ``voice`` in a job with ``job_speed``, as ``plan`` asks.

    The emotion's recipe (``prosody.perform``) is scaled by the plan's intensity and by how sure its
    source was (``prosody.strength``); an inferred emotion's rate change is scaled the same way, and a
    voice's own rate for the emotion rescales the plan's (``prosody.voice_rate``). A
    question rises at its end and emphasised words are stressed whatever the emotion.
    """
    if plan is None:
        return LineDelivery(speed=voice.speed * job_speed)
    emotional = plan.emotion != "neutral"
    amount = prosody.strength(plan.emotion, plan.emotion_source, plan.confidence) if emotional else 0.0
    performed = prosody.perform(plan.emotion, plan.intensity, amount, question=plan.sentence_type == "question",
                                emphasis=bool(plan.emphasis), overrides=voice.prosody)
    inferred = plan.emotion_source in ("rules", "model")
    rate = plan.rate * (prosody.voice_rate(plan.emotion, plan.intensity, voice.prosody) if emotional else 1.0)
    rate = 1 + (rate - 1) * amount if inferred and emotional else rate
    return LineDelivery(speed=voice.speed * job_speed * rate, emotion=plan.emotion if amount > 0 else None,
                        intensity=plan.intensity,
                        pause_before=_pause(plan.pause_before, performed.pause_before),
                        pause_after=_pause(plan.pause_after, performed.pause_after),
                        emphasis=tuple(plan.emphasis), note=plan.note, prosody=performed.prosody,
                        strength=round(amount, 3))


def _pause(planned: float | None, recipe: float) -> float | None:
    """The plan's pause if it set one, else the recipe's (None: the natural gap)."""
    return planned if planned is not None else (round(recipe, 3) or None)


def line_deliveries(plan: Plan | None, voices: dict[str, VoiceTemplate], speakers: dict[int, str],
                    job_speed: float) -> dict[int, LineDelivery]:
    """Every planned line's delivery by line index (the timeline reads their pauses)."""
    return {p.line_index: line_delivery(voices[speakers[p.line_index]], job_speed, p)
            for p in (plan.lines if plan else []) if p.line_index in speakers}


def line_plans(plan: Plan | None) -> dict[int, LinePlan]:
    return {p.line_index: p for p in plan.lines} if plan else {}


def unsupported(plan: Plan | None, voices: dict[str, VoiceTemplate], speakers: dict[int, str],
                honoured: dict[str, frozenset[str]]) -> list[str]:
    """What the plan asks that its speakers' engines cannot perform, one note per kind of request.

    ``honoured`` maps each speaker to the delivery fields performed for them (their engine's plus,
    in a line-by-line job, the timeline's pauses). Lines are named, the first ``MAX_LINES_NAMED`` of
    them, so a 700-line script gives a few notes, not hundreds.
    """
    missing: dict[str, list[int]] = {}
    for item in plan.lines if plan else []:
        speaker = speakers[item.line_index]
        voice, fields = voices[speaker], honoured[speaker]
        asks = []
        if item.emotion != "neutral" and item.emotion not in voice.emotions and "emotion" not in fields:
            asks.append(f"emotion {item.emotion!r} has no variant in voice {voice.id!r}")
        if item.rate != 1.0 and "rate" not in fields:
            asks.append(f"the {voice.engine} voice {voice.id!r} cannot change its pace")
        if (item.pause_before is not None or item.pause_after is not None) and not TIMELINE_FIELDS <= fields:
            asks.append(f"the plan's pauses cannot be placed for voice {voice.id!r} (one continuous take)")
        if item.emphasis and "emphasis" not in fields:
            asks.append(f"the {voice.engine} engine cannot stress words")
        if item.sentence_type == "question" and "intonation" not in fields:
            asks.append(f"the {voice.engine} engine cannot raise a question's end")
        for ask in asks:
            missing.setdefault(ask, []).append(item.line_index + 1)
    return [f"{ask}: {name_lines(numbers)}" for ask, numbers in missing.items()]


def name_lines(numbers: list[int]) -> str:
    """``lines 1, 4, 9 and 12 more``: the first ``MAX_LINES_NAMED`` line numbers of a note."""
    named = ", ".join(map(str, numbers[:MAX_LINES_NAMED]))
    more = len(numbers) - MAX_LINES_NAMED
    return f"line{'s' if len(numbers) > 1 else ''} {named}" + (f" and {more} more" if more > 0 else "")

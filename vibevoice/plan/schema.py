"""The delivery plan: how each script line should be performed, never what is said.

One ``LinePlan`` per script line, validated with pydantic, versioned and serialisable to JSON so the
page can show and edit it. Words and speakers are not part of the plan at all: they always come from
the script, which is how a planner (an LLM included) is kept from changing content.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

PLAN_VERSION = 1

Emotion = Literal[
    "neutral", "happy", "excited", "sad", "angry", "surprised", "skeptical", "calm", "serious",
    "fearful", "tender", "amused",
]
SentenceType = Literal["statement", "question", "exclamation"]
# Where a line's emotion came from: a stage direction or speaker hint ("hint": the script, the page's
# speaker hint, API instructions), a person's edit ("user"), the rules' word cues ("rules") or the
# local/HTTP model's guess ("model"). None: not recorded (older plans, hand-written JSON): performed as given.
EmotionSource = Literal["hint", "user", "rules", "model"]


class LinePlan(BaseModel):
    line_index: int = Field(ge=0)
    emotion: Emotion = "neutral"
    intensity: float = Field(default=0.5, ge=0.0, le=1.0)
    sentence_type: SentenceType = "statement"
    rate: float = Field(default=1.0, ge=0.7, le=1.3, description="speaking-rate factor")
    pause_before: float | None = Field(default=None, ge=0.0, le=10.0, description="seconds; None = natural gap")
    pause_after: float | None = Field(default=None, ge=0.0, le=10.0)
    emphasis: list[str] = Field(default_factory=list, description="words of the line to stress")
    note: str = Field(default="", max_length=200)
    emotion_source: EmotionSource | None = None
    confidence: float | None = Field(default=None, ge=0.0, le=1.0,
                                     description="the director's probability for its emotion (model guesses)")


class Plan(BaseModel):
    version: int = PLAN_VERSION
    planner: str
    lines: list[LinePlan]
    # Lines where the chosen planner failed and rules were used instead, with the reason.
    fallbacks: dict[int, str] = Field(default_factory=dict)
    # What did the planning (e.g. the local model's file), for people reading the plan.
    model: str | None = None
    # Lines whose plan came from the plan cache instead of being planned again.
    cached: list[int] = Field(default_factory=list)

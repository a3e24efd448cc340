"""From the director's emotion to a performance: the prosody recipes of ``presets/emotions.toml``.

A recipe says, for one emotion at full strength, how far to move the line's pitch (semitones), its
pitch range (a factor on log-F0 around its mean), its energy (dB), its rate and the pauses around it
(sources and values in the file). ``recipe_for`` scales it by the line's intensity and by how sure the
director was (``strength``): an explicit hint or a person's choice is performed in full, an emotion the
director only inferred at the precision its guesses of that emotion had when measured, and not at all
below the measured confidence floor, so a wrong guess does not make a plain line sound odd.

A leaf: reads only the preset file; ``delivery`` and the engines build on it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import tomllib

from . import paths
from .errors import BadInput

RECIPE_FIELDS = ("pitch", "range", "energy", "rate", "pause_before", "pause_after", "final_rise")


@dataclass(frozen=True)
class Prosody:
    """What the engine does to a line's predicted contours (all neutral by default).

    ``pitch_shift`` semitones on the whole line; ``pitch_range`` factor on log-F0 around its mean;
    ``energy_db`` on the energy curve; ``final_rise`` semitones over the last word (questions);
    ``emphasis_*`` over the phonemes of the emphasised words only.
    """

    pitch_shift: float = 0.0
    pitch_range: float = 1.0
    energy_db: float = 0.0
    final_rise: float = 0.0
    emphasis_pitch: float = 0.0
    emphasis_db: float = 0.0
    emphasis_stretch: float = 1.0

    @property
    def neutral(self) -> bool:
        return self == Prosody()

    def key(self) -> dict[str, float]:
        """Rounded values, for chunk keys and manifests."""
        return {k: round(v, 3) for k, v in asdict(self).items()}

    @classmethod
    def from_key(cls, values: dict[str, float] | None) -> Prosody:
        names = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in (values or {}).items() if k in names})


@dataclass(frozen=True)
class Performance:
    """A line's recipe once scaled: the engine's prosody plus the pauses the job lays out (the rate is
    the plan's: the rules planner takes it from the same recipe, ``rate_for``)."""

    prosody: Prosody
    pause_before: float = 0.0
    pause_after: float = 0.0


@functools.cache
def recipes() -> dict[str, Any]:
    """The parsed ``presets/emotions.toml``."""
    path = paths.PRESETS_DIR / "emotions.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise BadInput(f"emotion recipes {path} unreadable: {err}") from err


def recipe(emotion: str, overrides: dict[str, dict[str, float]] | None = None) -> dict[str, float]:
    """An emotion's full-strength recipe, with a voice template's overrides on top."""
    table = recipes()["emotion"]
    base = {"pitch": 0.0, "range": 1.0, "energy": 0.0, "rate": 1.0, "pause_before": 0.0, "pause_after": 0.0,
            "final_rise": 0.0}
    return base | table.get(emotion, {}) | (overrides or {}).get(emotion, {})


def check_overrides(overrides: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Validate a voice template's per-emotion overrides (known emotions and fields, finite numbers)."""
    known = set(recipes()["emotion"])
    for emotion, values in overrides.items():
        if emotion not in known:
            raise ValueError(f"prosody override for unknown emotion {emotion!r}; known: {', '.join(sorted(known))}")
        for name, value in values.items():
            if name not in RECIPE_FIELDS or not math.isfinite(float(value)):
                raise ValueError(f"prosody override {emotion}.{name}={value!r}: fields are {', '.join(RECIPE_FIELDS)}")
    return overrides


def rate_for(emotion: str, overrides: dict[str, dict[str, float]] | None = None) -> float:
    """The recipe's rate factor for ``emotion`` at full strength (the rules planner's rate tendency)."""
    return float(recipe(emotion, overrides)["rate"])


def planned_rate(emotion: str, intensity: float, overrides: dict[str, dict[str, float]] | None = None) -> float:
    """The rate a plan gives ``emotion`` at ``intensity``: the recipe's tendency, stronger with intensity,
    clamped to the plan schema's 0.7-1.3."""
    rate = rate_for(emotion, overrides)
    return round(min(1.3, max(0.7, 1 + (rate - 1) * (0.5 + intensity))), 2)


def voice_rate(emotion: str, intensity: float, overrides: dict[str, dict[str, float]] | None = None) -> float:
    """The factor a voice template's own rate for ``emotion`` puts on the plan's rate (1 without one).

    Why: a plan is made before (and without) the voices, so its rate carries the shared recipe's
    tendency; a voice that overrides the rate (a fast emotion that costs words on that voice) rescales
    it here, as the recipe's other values are overridden in ``perform``."""
    if "rate" not in (overrides or {}).get(emotion, {}):
        return 1.0
    return planned_rate(emotion, intensity, overrides) / planned_rate(emotion, intensity)


def strength(emotion: str, source: str | None, confidence: float | None) -> float:
    """How much of the recipe is performed: 1 for hints and people's choices, the measured precision of
    the director's inferred ``emotion`` otherwise (0 below its confidence floor or when never measured)."""
    table = recipes()["strength"]
    if source is None or source in ("hint", "user"):
        return float(table.get(source or "user", 1.0))
    inferred = table.get(source, {})
    floor = float(inferred.get("min_confidence", 0.0))
    if confidence is not None and confidence < floor:
        return 0.0
    return float(inferred.get("precision", {}).get(emotion, 0.0))


def intensity_scale(intensity: float) -> float:
    floor = float(recipes().get("intensity_floor", 0.5))
    return floor + (1.0 - floor) * min(1.0, max(0.0, intensity))


def perform(emotion: str, intensity: float, amount: float, question: bool = False, emphasis: bool = False,
            overrides: dict[str, dict[str, float]] | None = None) -> Performance:
    """The recipe of ``emotion`` at ``intensity``, times ``amount`` (``strength``), as engine prosody."""
    r, level = recipe(emotion, overrides), amount * intensity_scale(intensity)
    rise = level * r["final_rise"] + (float(recipes()["question"]["final_rise"]) if question else 0.0)
    emph = recipes()["emphasis"] if emphasis else {}
    prosody = Prosody(pitch_shift=level * r["pitch"], pitch_range=r["range"] ** level, energy_db=level * r["energy"],
                      final_rise=rise, emphasis_pitch=float(emph.get("pitch", 0.0)),
                      emphasis_db=float(emph.get("energy", 0.0)), emphasis_stretch=float(emph.get("stretch", 1.0)))
    return Performance(prosody=_clean(prosody), pause_before=level * r["pause_before"],
                       pause_after=level * r["pause_after"])


def _clean(prosody: Prosody) -> Prosody:
    """Exact neutral values where a level of 0 left float dust (so neutral lines keep their chunk keys)."""
    neutral = Prosody()
    return replace(prosody, **{f.name: getattr(neutral, f.name) for f in fields(prosody)
                               if abs(getattr(prosody, f.name) - getattr(neutral, f.name)) < 1e-9})

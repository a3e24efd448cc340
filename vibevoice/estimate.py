"""How long a line-by-line job takes, from start to the exported files (issue 16, estimates that hold).

The old estimate was speech × the engine's ``typical_rtf`` alone: 0:13 for a job that took 41 s cold and
15 s warm. A job also pays to load its engines in a fresh process (cold), a fixed cost per chunk
(phonemisation, session start, the chunk's file and manifest write), the director, and the export
(a few passes over the timeline, three encoders). The constants are measured on the 2-core reference
machine (``bench/bench_estimate.py`` prints estimate vs measurement, cold and warm); the
``VIBEVOICE_SPEED_FACTOR`` environment variable scales the whole estimate for a slower or faster machine.
"""

from __future__ import annotations

import os

from .engines import get_engine
from .engines.base import split_text
from .script import Script
from .voices import VoiceTemplate

LOAD_SECONDS = {"kokoro": 2.5, "piper": 1.0}  # weights into memory in a fresh process (graph already converted)
CHUNK_SECONDS = 0.08  # per chunk, beyond speech × RTF
EXPORT_RTF = 0.05  # export seconds per programme second (4 passes, watermark, WAV+FLAC+MP3); 0.11 under load 7
PLAN_SECONDS = {"rules": 0.002, "none": 0.0, "local": 0.25, "http": 0.5}  # per line
PLAN_LOAD_SECONDS = {"local": 4.0}  # the director's model, unless a recent plan left it loaded (``release_models``)


def render_seconds(script: Script, voices: dict[str, VoiceTemplate], planner: str = "rules",
                   warm: bool | None = None) -> float:
    """Estimated wall time of rendering and exporting ``script``; ``warm`` None asks this process."""
    speech = script.estimated_seconds()
    engines = {v.engine for v in voices.values()}
    rtf = max(get_engine(name).capabilities.typical_rtf for name in engines)
    chunks = sum(len(split_text(line.text, get_engine(voices[line.speaker].engine).capabilities.max_chunk_chars))
                 for line in script.lines)
    cold = sum(LOAD_SECONDS.get(name, 2.0) for name in engines if not (engine_loaded(name) if warm is None else warm))
    load = PLAN_LOAD_SECONDS.get(planner, 0.0) if not (director_loaded() if warm is None else warm) else 0.0
    plan = load + PLAN_SECONDS.get(planner, 0.0) * len(script.lines)
    total = cold + plan + speech * rtf + chunks * CHUNK_SECONDS + speech * EXPORT_RTF
    return total * float(os.environ.get("VIBEVOICE_SPEED_FACTOR", "1") or 1)


def engine_loaded(name: str) -> bool:
    """Whether this process already holds the engine's weights (a warm server, the second job)."""
    return get_engine(name).loaded


def director_loaded() -> bool:
    """Whether this process holds the local director's model (kept a while after a plan)."""
    import sys

    held = sys.modules.get("vibevoice.plan.local_model")
    return held is not None and held.is_loaded()


def planner_name(requested: str | None = None) -> str:
    """The director a job would use: "auto" is local when a local model is configured, else rules."""
    name = requested or os.environ.get("VIBEVOICE_PLANNER", "auto")
    if name == "auto":
        from .plan import local_model

        try:
            local_model.resolve(os.environ.get("VIBEVOICE_PLANNER_MODEL"))
        except Exception:  # noqa: BLE001 — no local model: auto plans with rules
            return "rules"
        return "local"
    return name

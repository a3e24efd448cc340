"""How long a line-by-line job takes, from start to the exported files (issue 16, estimates that hold).

The old estimate was speech × the engine's ``typical_rtf`` alone: 0:13 for a job that took 41 s cold and
15 s warm. A job also pays to load its engines in a fresh process (cold), a fixed cost per chunk
(phonemisation, session start, the chunk's file and manifest write), the director, and the export
(a few passes over the timeline, three encoders). The constants are measured on the 2-core reference
machine (``bench/bench_estimate.py`` prints estimate vs measurement, cold and warm).

Constants alone cannot hold on another machine, or on this one while other work shares its cores
(the same job took 2.4x longer at load 7). So every finished job teaches the estimate: ``learn``
stores, under ``VIBEVOICE_HOME/speed.json``, the seconds this machine spent per second of *estimated*
speech on rendering (per engine set) and on the export, and per line on directing — recent jobs
weigh most, long jobs more than short ones, and dividing by the estimated (not the rendered) speech
also corrects the speech-length estimate's own bias. The load constants are scaled by how much slower
than the reference the machine proved to be. ``VIBEVOICE_SPEED_FACTOR`` scales the constants that
nothing has measured yet (a machine's first job).
"""

from __future__ import annotations

import json
import os

from .atomic import write_bytes_atomic
from .engines import get_engine
from .engines.base import split_text
from .paths import home
from .script import Script
from .voices import VoiceTemplate

LOAD_SECONDS = {"kokoro": 2.5, "piper": 1.0}  # weights into memory in a fresh process (graph already converted)
CHUNK_SECONDS = 0.08  # per chunk, beyond speech × RTF
EXPORT_RTF = 0.05  # export seconds per programme second (4 passes, watermark, WAV+FLAC+MP3); 0.11 under load 7
PLAN_SECONDS = {"rules": 0.002, "none": 0.0, "local": 0.25, "http": 0.5}  # per line
PLAN_LOAD_SECONDS = {"local": 4.0}  # the director's model, unless a recent plan left it loaded (``release_models``)


DECAY = 0.5  # each job halves the weight of what was learned before it
REFERENCE = "reference"  # how much slower than the reference machine this one proved, overall


def render_seconds(script: Script, voices: dict[str, VoiceTemplate], planner: str = "rules",
                   warm: bool | None = None) -> float:
    """Estimated wall time of rendering and exporting ``script``; ``warm`` None asks this process."""
    speech = script.estimated_seconds()
    engines = sorted({v.engine for v in voices.values()})
    learned, default = _learned(), float(os.environ.get("VIBEVOICE_SPEED_FACTOR", "1") or 1)
    slower = learned.get(REFERENCE, default)
    cold = slower * sum(LOAD_SECONDS.get(name, 2.0) for name in engines
                        if not (engine_loaded(name) if warm is None else warm))
    director_cold = not (director_loaded() if warm is None else warm)
    plan = slower * PLAN_LOAD_SECONDS.get(planner, 0.0) * director_cold + len(script.lines) * learned.get(
        f"plan:{planner}", default * PLAN_SECONDS.get(planner, 0.0))
    synth = speech * learned.get("render:" + "+".join(engines), default * _reference_rate(script, voices, engines))
    export = speech * learned.get("export", default * EXPORT_RTF)
    return cold + plan + synth + export


def _reference_rate(script: Script, voices: dict[str, VoiceTemplate], engines: list[str]) -> float:
    """Render seconds per speech second on the reference machine: RTF plus the per-chunk cost."""
    rtf = max(get_engine(name).capabilities.typical_rtf for name in engines)
    chunks = sum(len(split_text(line.text, get_engine(voices[line.speaker].engine).capabilities.max_chunk_chars))
                 for line in script.lines)
    return rtf + chunks * CHUNK_SECONDS / max(script.estimated_seconds(), 1e-9)


def covers(voices: dict[str, VoiceTemplate], engine: str = "voices") -> bool:
    """Whether these estimates speak for such a job: line by line on the embedded engines. VibeVoice and
    Qwen3-TTS jobs depend on their checkpoint and device; their preflights estimate them."""
    return engine == "voices" and all(v.engine in LOAD_SECONDS for v in voices.values())


def learn(script: Script, voices: dict[str, VoiceTemplate], planner: str | None, cold: set[str],
          plan_seconds: float, render_seconds_: float, export_seconds: float, director_cold: bool = True) -> None:
    """Fold one finished, fully rendered job into what this machine is known to take (``speed.json``).

    ``cold`` names the engines the job had to load, ``director_cold`` whether the director had to load
    its model; those loads (scaled as estimated) are taken out, so cold and warm jobs teach one rate."""
    speech = script.estimated_seconds()
    if speech < 1.0:
        return  # too short to say anything but overhead
    engines = sorted({v.engine for v in voices.values()})
    state = _load_state()
    slower = _rate(state, REFERENCE) or 1.0
    render = max(render_seconds_ - slower * sum(LOAD_SECONDS.get(n, 2.0) for n in cold), 0.0)
    reference = _reference_rate(script, voices, engines) * speech
    _fold(state, REFERENCE, render, reference)
    _fold(state, "render:" + "+".join(engines), render, speech)
    _fold(state, "export", export_seconds, speech)
    if planner and script.lines:
        load = PLAN_LOAD_SECONDS.get(planner, 0.0) * slower * director_cold
        _fold(state, f"plan:{planner}", max(plan_seconds - load, 0.0), len(script.lines))
    try:
        write_bytes_atomic(_state_path(), json.dumps(state, indent=1).encode())
    except OSError:
        pass  # an estimate is not worth failing a finished job for


def _fold(state: dict, key: str, seconds: float, per: float) -> None:
    old = state.get(key, {"seconds": 0.0, "per": 0.0})
    state[key] = {"seconds": old["seconds"] * DECAY + seconds, "per": old["per"] * DECAY + per}


def _rate(state: dict, key: str) -> float | None:
    entry = state.get(key)
    return entry["seconds"] / entry["per"] if entry and entry.get("per", 0) > 0 else None


def _learned() -> dict[str, float]:
    state = _load_state()
    return {key: rate for key in state if (rate := _rate(state, key)) is not None}


def _state_path():
    return home() / "speed.json"


def _load_state() -> dict:
    try:
        state = json.loads(_state_path().read_text())
        return {k: v for k, v in state.items() if isinstance(v, dict) and {"seconds", "per"} <= set(v)}
    except (OSError, ValueError, AttributeError):
        return {}


def engine_loaded(name: str) -> bool:
    """Whether this process already holds the engine's weights (a warm server, the second job)."""
    return get_engine(name).loaded


def director_loaded() -> bool:
    """Whether the local director's model is loaded: its process is running (kept a while after a
    plan), or, planning in-process, this process holds it."""
    import sys

    from .plan import process

    held = sys.modules.get("vibevoice.plan.local_model")
    return process.alive() or (held is not None and held.is_loaded())


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

"""One-off conversions and warm-ups, done before anyone clicks Generate (issue 16, first audio).

``scripts/install.sh`` runs ``python -m vibevoice.warmup`` once, so the Kokoro graph conversion (cached
under the app's cache directory) is not paid on the first click after install; ``app.py`` runs
``warm_up`` and ``warm_director`` in a background thread at start, with progress lines, so the first
job in a fresh server finds the voice engine and the director loaded. ``VIBEVOICE_WARMUP=0`` turns
the server's warm-up off.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from .engines import get_engine
from .voices import load_templates


def warm_up(say: Callable[[str], None] = print) -> float:
    """Load (and, the first time, convert) the default voice engine and speak one word; seconds taken."""
    t0 = time.perf_counter()
    say("warming up: loading the Kokoro voices…")
    templates = load_templates()
    voice = next(t for t in templates.values() if t.engine == "kokoro")
    get_engine("kokoro").speak("Ready.", voice)
    seconds = time.perf_counter() - t0
    say(f"warming up: ready in {seconds:.1f} s")
    return seconds


def in_background(say: Callable[[str], None] = print) -> threading.Thread | None:
    if os.environ.get("VIBEVOICE_WARMUP", "1") == "0":
        return None

    def run() -> None:
        try:
            warm_up(say)
            warm_director(say)
        except Exception as error:  # noqa: BLE001 — a failed warm-up only costs the first job its speed
            say(f"warming up failed ({type(error).__name__}: {error}); the first job will load it")

    thread = threading.Thread(target=run, name="warm-up", daemon=True)
    thread.start()
    return thread


def warm_director(say: Callable[[str], None] = print) -> None:
    """Load the director's model and its prompt state when jobs plan with it by default, then start its
    idle clock (``plan.release_models``): the first Generate after start does not wait 5–10 s for it,
    and if nobody comes its memory goes back after ``VIBEVOICE_DIRECTOR_IDLE`` seconds."""
    from .estimate import planner_name

    if planner_name() != "local":
        return
    from .plan import process, release_models
    from .plan.local import LocalPlanner
    from .plan.settings import PlannerSettings

    t0 = time.perf_counter()
    if process.wanted("local"):  # in the director's own process, which then waits for the first job
        if process.warm():
            say(f"warming up: the director is ready in {time.perf_counter() - t0:.1f} s")
        return
    try:
        LocalPlanner(PlannerSettings()).warm()
        say(f"warming up: the director is ready in {time.perf_counter() - t0:.1f} s")
    finally:
        release_models()


def convert_director(say: Callable[[str], None] = print) -> None:
    """Convert the director's GGUF model once (cached), then let it go: the install-time half."""
    from .plan import local_model
    from .plan.settings import PlannerSettings

    settings = PlannerSettings()
    try:
        local_model.load(settings.model, "cpu", settings.resolved_cache_dir())
        say("warming up: the director's model is converted")
    except local_model.ModelUnavailable as error:
        say(f"warming up: no local director ({error}); plans use rules")
    finally:
        local_model.release()


if __name__ == "__main__":
    convert_director()
    warm_up()

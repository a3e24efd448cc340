"""The director: how each script line should be delivered (emotion, intensity, rate, pauses, emphasis).

``make_plan`` runs one of three planners, all behind one interface (``base.Planner``):

- ``rules``: stage directions, punctuation and particles; instant and always available.
- ``local``: a small LLM on this machine scoring the fixed emotions (``local.py``); the default
  when its model loads.
- ``http``: any OpenAI-compatible chat endpoint, asked for JSON and checked line by line (``http.py``).

Whatever the planner, the rules plan is computed first and every line the planner cannot deliver
(a model that does not load, an endpoint that is down, an answer that is not valid, the time budget
running out) keeps it, with the reason in ``Plan.fallbacks`` and a logged warning: ``make_plan``
never raises because a planner failed. Planned lines are cached per line (``cache.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..errors import BadInput
from ..script import Script
from . import rules
from .base import Failed, Planner
from .cache import PlanCache, line_key
from .schema import PLAN_VERSION, LinePlan, Plan
from .settings import PLANNERS, PlannerSettings
from .validate import PlanError, load_plan

__all__ = ["PLANNERS", "PLAN_VERSION", "LinePlan", "Plan", "PlanError", "PlannerSettings", "load_plan",
           "make_plan"]

log = logging.getLogger(__name__)
DIRECTOR_IDLE_SECONDS = 120.0  # how long the director's model stays loaded after a plan (``release_models``)


def make_plan(script: Script, planner: str = "auto", *, settings: PlannerSettings | None = None,
              progress: Callable[[int, int], None] | None = None,
              on_line: Callable[[LinePlan], None] | None = None) -> Plan:
    """Plan every line of ``script``; ``planner`` "auto" means ``settings.planner`` (itself "auto" by
    default: local if its model loads, else rules). ``progress(done, total)`` is called as lines finish.

    ``on_line(plan)`` gets each line's plan as soon as it is final (a cached line, a planned one, or one
    that fell back to rules), in any order; lines no planner reached (rules throughout, a planner that
    did not load or crashed) are only in the returned plan.
    The planners read the lines before a line, never its answer for later ones, so a job can render a
    line while the director plans the next (``Job.direct`` with ``ahead``).
    """
    tell = on_line or (lambda plan: None)
    settings = settings or PlannerSettings()
    name = settings.planner if planner == "auto" else planner
    if name not in ("auto", *PLANNERS):
        raise BadInput(f"unknown planner {planner!r}: choose auto, {', '.join(PLANNERS)}")
    total = len(script.lines)
    deadline = time.monotonic() + settings.budget if settings.budget else None
    base = rules.plan_script(script)
    if name == "rules":
        _report(progress, total, total)
        return Plan(planner="rules", lines=base)

    impl, reason = _open(name, settings)
    if impl is None:
        log.warning("%s; planning with rules", reason)
        _report(progress, total, total)
        return Plan(planner="rules" if name == "auto" else name, lines=base,
                    fallbacks={i: reason for i in range(total)})

    cache = PlanCache(settings.resolved_cache_dir() if settings.use_cache else None)
    fingerprint = impl.fingerprint()
    keys = [line_key(fingerprint, script, i, impl.span(script, i)) for i in range(total)]
    planned = {i: hit for i, key in enumerate(keys) if (hit := cache.get(key, i))}
    cached = sorted(planned)
    for i in cached:
        tell(planned[i])

    def keep(i: int, plan: LinePlan | None) -> None:
        if plan is not None:
            cache.put(keys[i], plan)
        tell(plan or base[i])

    fallbacks = _ask(impl, script, [i for i in range(total) if i not in planned], deadline, planned, keep, progress)
    if fallbacks:
        first = min(fallbacks)
        log.warning("%s planner: %d of %d lines planned by rules instead (line %d: %s)", impl.name,
                    len(fallbacks), total, first, fallbacks[first])
        _report(progress, total, total)
    lines = [planned.get(i, base[i]) for i in range(total)]
    return Plan(planner=impl.name, lines=lines, fallbacks=dict(sorted(fallbacks.items())), model=impl.model,
                cached=cached)


def release_models() -> None:
    """Let the director's language model go once no plan has used it for ``VIBEVOICE_DIRECTOR_IDLE``
    seconds (default 120; 0 = at once). A render never needs it again, and it is the largest thing a job
    holds besides the voices (issue 16, memory); but someone generating again on a warm server would
    otherwise wait for it to load again (5–20 s on 2 busy cores) before the first audio (issue 16, first
    audio). Keeping it a while does not raise the peak: planning holds it next to the voices anyway.
    ``VIBEVOICE_KEEP_DIRECTOR=1`` keeps it loaded for good."""
    import os
    import sys

    if os.environ.get("VIBEVOICE_KEEP_DIRECTOR") != "1" and "vibevoice.plan.local_model" in sys.modules:
        idle = float(os.environ.get("VIBEVOICE_DIRECTOR_IDLE", DIRECTOR_IDLE_SECONDS) or 0)
        sys.modules["vibevoice.plan.local_model"].release_after(idle)


def release_now() -> None:
    """Give the director's memory back at once, wherever it lives (its own process, or this one): for a
    caller that plans no more, such as a CLI render, whose rendering should not hold a gigabyte of
    language model next to the voices for the idle time (issue 16: a 90-minute job within 1.5 GB)."""
    import sys

    from . import process

    process.stop()
    if "vibevoice.plan.local_model" in sys.modules:
        sys.modules["vibevoice.plan.local_model"].release_after(0)


def _ask(impl: Planner, script: Script, todo: list[int], deadline: float | None, planned: dict[int, LinePlan],
         keep: Callable[[int, LinePlan | None], None], progress: Callable[[int, int], None] | None) -> dict[int, str]:
    """Have ``impl`` plan the ``todo`` lines into ``planned``; return the lines it failed, with why.
    ``keep(i, plan)`` hears of each line as it is answered (``None``: it failed, rules stand in).

    A crash inside the planner costs its remaining lines, never the plan; its model is released at the
    end, also when a progress callback raised.
    """
    total, fallbacks = len(script.lines), {}
    _report(progress, len(planned), total)
    results, failure = iter(impl.plan(script, todo, deadline)), f"the {impl.name} planner gave no answer"
    waiting = set(todo)
    try:
        while True:
            try:
                i, result = next(results)
            except StopIteration:
                break
            except Exception as err:  # noqa: BLE001 — recorded as the reason for the remaining lines
                log.exception("%s planner failed", impl.name)
                failure = f"the {impl.name} planner failed: {type(err).__name__}: {err}"[:300]
                break
            if i not in waiting:
                continue  # a line not asked for, or answered twice
            waiting.discard(i)
            if isinstance(result, LinePlan) and result.line_index == i:
                planned[i] = result
                keep(i, result)
            else:
                fallbacks[i] = result.reason if isinstance(result, Failed) else f"{impl.name} planner: bad answer"
                keep(i, None)
            _report(progress, len(planned) + len(fallbacks), total)
    finally:
        getattr(results, "close", lambda: None)()
    return {**fallbacks, **{i: failure for i in waiting}}


def _open(name: str, settings: PlannerSettings) -> tuple[Planner | None, str]:
    """The planner, or None and why not (a missing model, package or URL is not an error of the plan)."""
    kind = "local" if name == "auto" else name
    try:
        if kind == "local":
            from .local import LocalPlanner

            return LocalPlanner(settings), ""
        from .http import HttpPlanner

        return HttpPlanner(settings), ""
    except Exception as err:
        return None, f"{kind} planner unavailable: {err}"[:300]


def _report(progress: Callable[[int, int], None] | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)

"""The local director in a process of its own, which goes away when nobody has asked it for a while.

A language model in the server's own process never quite leaves: torch and transformers stay imported
and the heap stays fragmented. Measured with ``bench/bench_memory.py --server 3`` (three small jobs,
local director, Kokoro), the app idled at ~1.04 GB after its jobs with the director released
in-process, against ~0.68 GB right after start. Loading the model for every job instead costs each
job's first audio the load (5–20 s on two busy cores). So the director lives in a child process that
keeps its model between plans and exits after ``VIBEVOICE_DIRECTOR_IDLE`` seconds without one
(default 120; 0: after every plan): a warm server plans at once, an idle one gives all of it back,
and a crash or an out-of-memory kill inside the model costs the plan (the rules plan is used, with the
reason on every line), never the server.

The protocol is JSON lines: one request per line on the child's stdin (``{"plan": {"script", "planner",
"lines"}}`` or ``{"warm": true}``), answers on its stdout marked with ``MARK`` (anything else a library
prints there is ignored): ``{"done": n, "total": t}`` as lines finish (and, when ``lines`` is true, each
line's final plan as ``{"line": …}``), then ``{"plan": …}``, ``{"warm": …}`` or ``{"error": …}`` (a ``BadInput`` such as an unknown planner, raised again in the parent).
``{"cancel": true}`` while a plan runs (its job was cancelled) stops it between two lines, answered
``{"cancelled": true}``: the model stays loaded and the next job's plan does not wait for the old one.
``VIBEVOICE_DIRECTOR_PROCESS=0`` plans in-process instead; so does ``VIBEVOICE_KEEP_DIRECTOR=1``.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from ..errors import BadInput, Cancelled
from ..script import Script
from . import rules
from .schema import LinePlan, Plan

MARK = "\x1evibevoice-plan "
IDLE_SECONDS = 120.0
NICENESS = 5
CANCEL_SECONDS = 10.0  # how long a given-up plan may take to stop before its process is killed
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
CHILD = [sys.executable, "-m", "vibevoice.plan.process"]

_lock = threading.Lock()  # one request at a time, as the model itself allows
_child: list[subprocess.Popen] = []  # the running director, if any


def wanted(planner: str) -> bool:
    """Whether ``planner`` should run in the child: only planners that may load a local model."""
    return (planner in ("auto", "local") and os.environ.get("VIBEVOICE_DIRECTOR_PROCESS", "1") != "0"
            and os.environ.get("VIBEVOICE_KEEP_DIRECTOR") != "1")


def idle_seconds() -> float:
    return max(0.0, float(os.environ.get("VIBEVOICE_DIRECTOR_IDLE", IDLE_SECONDS) or 0))


def alive() -> bool:
    """Whether the director's process is running (its model loaded, or loading)."""
    return bool(_child) and _child[0].poll() is None


def plan_in_child(script: Script, planner: str, progress: Callable[[int, int], None] | None = None,
                  on_line: Callable[[LinePlan], None] | None = None) -> Plan:
    """``make_plan(script, planner)`` in the director's process; its progress (and, for ``on_line``, each
    line's plan) is relayed as it comes."""
    request = {"script": script.model_dump(mode="json"), "planner": planner, "lines": on_line is not None}
    answer = _ask({"plan": request}, progress, on_line)
    if "error" in answer:
        raise BadInput(answer["error"])
    if "plan" in answer:
        return Plan.model_validate(answer["plan"])
    reason = f"the director's process ended without a plan (exit code {answer.get('exit')})"
    return Plan(planner="rules", lines=rules.plan_script(script), fallbacks={i: reason for i in range(len(script.lines))})


def warm() -> bool:
    """Start the director's process and have it load its model now (a server at start); True if it did."""
    return bool(_ask({"warm": True}).get("warm"))


def stop() -> None:
    """End the director's process now (its memory goes back at once)."""
    with _lock:
        while _child:
            child = _child.pop()
            if child.poll() is None:
                child.kill()
            child.wait()


def _ask(request: dict, progress: Callable[[int, int], None] | None = None,
         on_line: Callable[[LinePlan], None] | None = None) -> dict:
    """Send ``request`` and collect the answer. A child that had just timed out (it exits as the request
    arrives) is replaced once; a child that dies while working is reported as such."""
    with _lock:
        for attempt in (0, 1):
            child = _running()
            answer = _exchange(child, request, progress, on_line)
            if "exit" not in answer or answer.get("started") or attempt:
                answer.pop("started", None)
                return answer
        raise AssertionError("unreachable")


def _running() -> subprocess.Popen:
    if _child and _child[0].poll() is None:
        return _child[0]
    if _child:
        _child.pop().wait()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen(CHILD, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, bufsize=1)
    _child.append(child)
    return child


def _exchange(child: subprocess.Popen, request: dict, progress, on_line) -> dict:
    answer: dict = {}
    try:
        child.stdin.write(json.dumps(request) + "\n")
        child.stdin.flush()
        for line in child.stdout:
            if not line.startswith(MARK):
                continue
            message = json.loads(line[len(MARK):])
            answer["started"] = True
            if "done" in message:
                if progress is not None:
                    progress(message["done"], message["total"])
                continue
            if "line" in message:
                if on_line is not None:
                    on_line(LinePlan.model_validate(message["line"]))
                continue
            answer.update(message)
            return answer
    except (BrokenPipeError, OSError):
        pass
    except BaseException:  # the caller gave up (a cancelled job, Ctrl-C): the child stops too
        _abandon(child)
        raise
    if child.poll() is None:
        child.kill()
    answer["exit"] = child.wait()
    return answer


def _abandon(child: subprocess.Popen) -> None:
    """Tell the child to give the running plan up and wait until it says so (it checks between two
    lines), so it neither plans on for nobody nor holds the lock the next job's plan waits for, and its
    model stays loaded for that job. A child silent for ``CANCEL_SECONDS`` is killed."""
    killer = threading.Timer(CANCEL_SECONDS, child.kill)
    killer.start()
    try:
        child.stdin.write(json.dumps({"cancel": True}) + "\n")
        child.stdin.flush()
        for line in child.stdout:
            if line.startswith(MARK) and not {"done", "line"} & json.loads(line[len(MARK):]).keys():
                return  # its answer: "cancelled", or the plan it had just finished
    except (OSError, ValueError):
        child.kill()
    finally:
        killer.cancel()


def main() -> None:
    """The child's side: answer requests until stdin closes or none came for the idle time."""
    from . import make_plan
    from .local import LocalPlanner
    from .settings import PlannerSettings

    def say(message: dict) -> None:
        sys.stdout.write(MARK + json.dumps(message) + "\n")
        sys.stdout.flush()

    idle = idle_seconds()
    timer: threading.Timer | None = None
    # The job renders each line while this plans the next (``job/ahead.py``): on two cores the audio
    # someone is waiting for goes first, and the director takes what the render leaves.
    os.nice(NICENESS)
    cancel, requests = _read_requests()
    while (request := requests.get()) is not None:
        if timer is not None:
            timer.cancel()
        cancel.clear()  # a cancel that came after its plan was answered is not for this one

        def check() -> None:
            if cancel.is_set():
                raise _PlanCancelled

        try:
            if "warm" in request:  # the model loaded and its prompt state computed
                say({"warm": _warm(LocalPlanner, PlannerSettings)})
            else:
                asked = request["plan"]
                tell = ((lambda line: (check(), say({"line": line.model_dump(mode="json")})))
                        if asked.get("lines") else None)
                plan = make_plan(Script.model_validate(asked["script"]), asked["planner"], on_line=tell,
                                 progress=lambda done, total: (check(), say({"done": done, "total": total})))
                say({"plan": plan.model_dump(mode="json")})
        except BadInput as err:
            say({"error": str(err)})
        except _PlanCancelled:
            say({"cancelled": True})
        if idle <= 0:
            return
        timer = threading.Timer(idle, os._exit, args=(0,))  # nobody came: all of it goes back to the OS
        timer.daemon = True
        timer.start()


class _PlanCancelled(Cancelled):
    """Raised in the child between two lines once the parent has given the plan up."""


def _read_requests() -> tuple[threading.Event, queue.Queue[dict | None]]:
    """stdin read in a thread: ``{"cancel": true}`` sets the event at once (a plan is running), every
    other request is queued; None once stdin closes."""
    cancel, requests = threading.Event(), queue.Queue()

    def read() -> None:
        for line in sys.stdin:
            message = json.loads(line)
            if "cancel" in message:
                cancel.set()
            else:
                requests.put(message)
        requests.put(None)

    threading.Thread(target=read, name="requests", daemon=True).start()
    return cancel, requests


def _warm(planner, settings) -> bool:
    try:
        planner(settings()).warm()
    except Exception:  # noqa: BLE001 — no local model (the plans will say why); nothing to keep warm
        return False
    return True


if __name__ == "__main__":
    main()

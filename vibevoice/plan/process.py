"""The local director in a child process, so that when planning ends all of its memory is gone.

A language model in the server's own process never quite leaves: torch and transformers stay
imported and the heap stays fragmented. Measured with ``bench/bench_memory.py --server 3`` (three small
jobs, local director, Kokoro), the app idled at ~1.04 GB after its jobs with the director released
in-process, against ~0.68 GB right after start; a child process takes everything with it when it
exits, and a crash or an out-of-memory kill inside the model costs the plan (the rules plan is used,
with the reason on every line), never the server. The price is the child's start (an interpreter and
the torch import, a second or two) on top of the model load every job already paid.

The protocol is JSON lines on the child's stdout, each marked with ``MARK`` (anything else a library
prints there is ignored): ``{"done": n, "total": t}`` as lines finish, then ``{"plan": …}`` or
``{"error": …}`` (a ``BadInput`` such as an unknown planner, raised again in the parent).
``VIBEVOICE_DIRECTOR_PROCESS=0`` plans in-process instead; so does ``VIBEVOICE_KEEP_DIRECTOR=1``, whose
point is to keep the model loaded between jobs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import BadInput
from ..script import Script
from . import rules
from .schema import Plan

MARK = "\x1evibevoice-plan "
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
CHILD = [sys.executable, "-m", "vibevoice.plan.process"]


def wanted(planner: str) -> bool:
    """Whether ``planner`` should run in a child: only planners that may load a local model."""
    return (planner in ("auto", "local") and os.environ.get("VIBEVOICE_DIRECTOR_PROCESS", "1") != "0"
            and os.environ.get("VIBEVOICE_KEEP_DIRECTOR") != "1")


def plan_in_child(script: Script, planner: str, progress: Callable[[int, int], None] | None = None) -> Plan:
    """``make_plan(script, planner)`` in a fresh interpreter; its progress is relayed as it comes."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen(CHILD, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env)
    answer: dict = {}
    try:
        child.stdin.write(json.dumps({"script": script.model_dump(mode="json"), "planner": planner}))
        child.stdin.close()
        for line in child.stdout:
            if not line.startswith(MARK):
                continue
            message = json.loads(line[len(MARK):])
            if "done" in message and progress is not None:
                progress(message["done"], message["total"])
            answer.update(message)
        code = child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    if "error" in answer:
        raise BadInput(answer["error"])
    if "plan" in answer:
        return Plan.model_validate(answer["plan"])
    reason = f"the director's process ended without a plan (exit code {code})"
    return Plan(planner="rules", lines=rules.plan_script(script), fallbacks={i: reason for i in range(len(script.lines))})


def main() -> None:
    """The child's side: read the request from stdin, plan, write the answer."""
    from . import make_plan

    def say(message: dict) -> None:
        sys.stdout.write(MARK + json.dumps(message) + "\n")
        sys.stdout.flush()

    request = json.loads(sys.stdin.read())
    try:
        plan = make_plan(Script.model_validate(request["script"]), request["planner"],
                         progress=lambda done, total: say({"done": done, "total": total}))
    except BadInput as err:
        return say({"error": str(err)})
    say({"plan": plan.model_dump(mode="json")})


if __name__ == "__main__":
    main()

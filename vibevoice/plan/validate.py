"""Checking a plan that came from outside (an LLM's JSON, a user's edited plan file) against the script.

A plan may change delivery only. An entry that carries words or a speaker different from the script's,
names a line that is not there, uses a field the schema does not have, or asks to stress a word the
line does not contain is rejected for that line; the line then falls back to rules and the reason is
kept. Checks are per line so one bad entry never costs the rest of the plan.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import ValidationError

from ..errors import BadInput
from ..script import Script
from . import rules
from .schema import PLAN_VERSION, LinePlan, Plan

log = logging.getLogger(__name__)

_FIELDS = set(LinePlan.model_fields)
_CONTENT = {"text": "words", "speaker": "speaker"}  # tolerated only when equal to the script's


class PlanError(BadInput):
    """The document as a whole is unusable (not JSON, not a plan, an unknown version)."""


def check_entry(entry: Any, script: Script) -> tuple[int | None, LinePlan | str]:
    """(line index, plan) for a valid entry, (line index, reason) for a rejected one.

    The index is None when the entry names no line of this script, so there is no line to fall back.
    """
    if not isinstance(entry, dict):
        return None, f"an entry is {type(entry).__name__}, not an object"
    index = entry.get("line_index")
    if isinstance(index, str) and index.strip().isdigit():
        index = int(index)
    if not isinstance(index, int) or isinstance(index, bool):
        return None, f"an entry has no valid line_index ({index!r})"
    if not 0 <= index < len(script.lines):
        return None, f"an entry names line {index}, which does not exist (the script has {len(script.lines)})"
    line = script.lines[index]
    for key, what in _CONTENT.items():
        if key in entry and _norm(entry[key]) != _norm(getattr(line, key)):
            return index, f"rejected: the plan tries to change the line's {what} (plans change delivery only)"
    unknown = sorted(set(entry) - _FIELDS - set(_CONTENT))
    if unknown:
        return index, f"rejected: unknown field {unknown[0]!r}"
    try:
        plan = LinePlan.model_validate({k: v for k, v in entry.items() if k in _FIELDS} | {"line_index": index})
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "entry"
        return index, f"rejected: {where}: {first['msg']}"
    text = line.text.casefold()
    for word in plan.emphasis:
        if not word.strip() or word.casefold() not in text:
            return index, f"rejected: emphasis word {word!r} is not in the line"
    return index, plan


def load_plan(data: str | bytes | dict, script: Script) -> Plan:
    """Validate a plan document against ``script``; rejected or missing lines get rules plus a reason.

    Raises ``PlanError`` only when the document as a whole cannot be read as a plan.
    """
    doc = _document(data)
    base = rules.plan_script(script)
    accepted: dict[int, LinePlan] = {}
    fallbacks: dict[int, str] = {}
    for entry in doc["lines"]:
        index, result = check_entry(entry, script)
        if index is None:
            log.warning("plan entry ignored: %s", result)
        elif index in accepted or index in fallbacks:
            accepted.pop(index, None)
            fallbacks[index] = "rejected: the plan has more than one entry for this line"
        elif isinstance(result, str):
            fallbacks[index] = result
        else:
            accepted[index] = result
    previous = doc.get("fallbacks") or {}
    for i in range(len(script.lines)):
        if i not in accepted and i not in fallbacks:
            fallbacks[i] = "missing from the plan"
        elif i in accepted and isinstance(previous, dict) and isinstance(previous.get(str(i), previous.get(i)), str):
            fallbacks[i] = previous.get(str(i), previous.get(i))  # the plan's own record stays true
    if rejected := {i: r for i, r in fallbacks.items() if i not in accepted}:
        log.warning("plan: %d of %d lines planned by rules instead (first: line %d, %s)",
                    len(rejected), len(script.lines), min(rejected), rejected[min(rejected)])
    lines = [accepted.get(i, base[i]) for i in range(len(script.lines))]
    planner = doc.get("planner") if isinstance(doc.get("planner"), str) else "file"
    return Plan(planner=planner, lines=lines, fallbacks=dict(sorted(fallbacks.items())), model=doc.get("model")
                if isinstance(doc.get("model"), str) else None)


def _document(data: str | bytes | dict) -> dict:
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as err:
            raise PlanError(f"the plan is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise PlanError(f"a plan is a JSON object with a \"lines\" list, not {type(data).__name__}")
    version = data.get("version", PLAN_VERSION)
    if version != PLAN_VERSION:
        raise PlanError(f"plan version {version!r} is not supported (this version reads {PLAN_VERSION})")
    if not isinstance(data.get("lines"), list):
        raise PlanError('a plan needs a "lines" list')
    return data


def _norm(value: Any) -> str:
    return " ".join(str(value).split())

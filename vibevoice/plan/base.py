"""The planner interface, and the blocks LLM planners read a script in.

A planner gets the lines still to plan and yields, per line, a ``LinePlan`` or a ``Failed`` reason;
``make_plan`` does everything else (rules baseline, cache, fallbacks, progress, the time budget's
clock). ``span`` tells the cache which lines a line's plan depends on, so editing one line re-plans
only the lines that actually saw it.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import NamedTuple

from ..script import Script
from .schema import LinePlan


class Failed(NamedTuple):
    """A line the planner could not plan; rules take over and ``reason`` goes into ``Plan.fallbacks``."""

    reason: str


class Planner(ABC):
    name: str
    model: str | None = None  # what did the planning, for people reading the plan

    @abstractmethod
    def fingerprint(self) -> str:
        """Everything besides the script that decides the output: model identity, prompt version, settings."""

    def span(self, script: Script, index: int) -> range:
        """Lines whose content decides line ``index``'s plan (its cache key covers exactly these)."""
        return range(index, index + 1)

    @abstractmethod
    def plan(self, script: Script, todo: list[int], deadline: float | None) -> Iterator[tuple[int, LinePlan | Failed]]:
        """Plan the lines ``todo`` (ascending); ``deadline`` is a ``time.monotonic()`` value or None."""


def blocks(script: Script, size: int) -> list[range]:
    """Cut the script into runs of about ``size`` lines, at places chosen by the lines' content.

    LLM planners read a block at a time (with a few lines before it as context). Boundaries come from
    a hash of the line that starts each block, not from line numbers, so inserting or deleting a line
    moves only the blocks around it and the plan cache still matches everywhere else.
    """
    n = len(script.lines)
    out, start = [], 0
    for i in range(1, n):
        length = i - start
        line = script.lines[i]
        digest = hashlib.sha1(f"{line.speaker}\n{line.text}".encode()).digest()
        if length >= 2 * size or (length >= 2 and int.from_bytes(digest[:4], "big") % size == 0):
            out.append(range(start, i))
            start = i
    if n:
        out.append(range(start, n))
    return out


def block_of(script_blocks: list[range], index: int) -> range:
    return next(b for b in script_blocks if index in b)

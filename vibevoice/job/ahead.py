"""The director planning in a thread of its own, its lines handed over in script order as they are final.

Why: with a script of 40 lines the kept local director takes ~2.5 s (a 90-minute one, minutes) before
the first chunk could start, and a listener waits all of it (issue 16, first audio). The planners read
only the lines before a line, never their own later answers, so line *i*'s plan is final the moment
it is made: the job can key and render line 0 while the director plans line 1, and so on
(``Job.direct`` with ``ahead``). The final plan still comes from the director in one piece and keys
every chunk; what was rendered ahead is reused by its key, so the audio is the same either way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..errors import Cancelled
from ..plan.schema import LinePlan, Plan

PlanFn = Callable[[Callable[[LinePlan], None]], "Plan | None"]


class DirectorThread:
    """Runs ``plan(on_line)`` in a daemon thread; ``next_lines`` hands over the lines in order."""

    def __init__(self, plan: PlanFn) -> None:
        self._arrived: dict[int, LinePlan] = {}
        self._next = 0  # the first line not handed over yet
        self._done = False
        self._plan: Plan | None = None
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._cancelled = False
        threading.Thread(target=self._run, args=(plan,), name="director", daemon=True).start()

    def cancel(self) -> None:
        """Nobody will take the rest (the job was cancelled or failed): the director stops at its next
        line instead of planning on (a 90-minute script: minutes of both cores, and the next job's plan
        queued behind it)."""
        with self._changed:
            self._cancelled = True

    def next_lines(self) -> list[LinePlan]:
        """The next lines whose plans are final, in script order (waits for at least one); [] once the
        director has finished: the lines it never reported are only in its final plan (``result``)."""
        with self._changed:
            self._changed.wait_for(lambda: self._next in self._arrived or self._done)
            ready = []
            while self._next in self._arrived:
                ready.append(self._arrived.pop(self._next))
                self._next += 1
            return ready

    def result(self) -> Plan | None:
        """The director's whole plan (waits for it); its error, if it raised one, is raised here."""
        with self._changed:
            self._changed.wait_for(lambda: self._done)
        if self._error is not None:
            raise self._error
        return self._plan

    def _run(self, plan: PlanFn) -> None:
        try:
            self._plan = plan(self._arrive)
        except BaseException as err:  # noqa: BLE001 — handed to whoever waits for the plan
            self._error = err
        finally:
            with self._changed:
                self._done = True
                self._changed.notify_all()

    def _arrive(self, line: LinePlan) -> None:
        with self._changed:
            if self._cancelled:
                raise Cancelled("the job that asked for this plan was cancelled")
            if line.line_index >= self._next:
                self._arrived[line.line_index] = line
                self._changed.notify_all()

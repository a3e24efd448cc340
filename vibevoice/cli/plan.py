"""``vibevoice plan``: show (or write as JSON) the delivery plan for a script, without rendering.

Useful on its own to see what the director decided and why (the note column), and to produce a plan
file to edit and hand back (``load_plan`` checks it against the script). Planner failures are not
errors: the affected lines are planned by rules and listed under the table.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from ..plan import PLANNERS, PlannerSettings, make_plan
from .common import ScriptArg, err, out, parse, read_script


def plan_command(
    script: ScriptArg,
    planner: Annotated[str, typer.Option(help=f"auto (local if its model loads, else rules), {', '.join(PLANNERS)}")]
    = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="print the plan as JSON instead of a table")] = False,
    model: Annotated[Optional[str], typer.Option(help="local planner: transformers model dir or .gguf file",
                                                 envvar="VIBEVOICE_PLANNER_MODEL")] = None,
    url: Annotated[Optional[str], typer.Option(help="http planner: OpenAI-compatible base URL",
                                               envvar="VIBEVOICE_PLANNER_URL")] = None,
    http_model: Annotated[Optional[str], typer.Option(help="http planner: model name",
                                                      envvar="VIBEVOICE_PLANNER_HTTP_MODEL")] = None,
    budget: Annotated[Optional[float], typer.Option(min=0.1, help="seconds for the whole plan; the rest by rules")]
    = None,
    cache: Annotated[bool, typer.Option(help="reuse and store per-line plans in the cache")] = True,
) -> None:
    """Plan how each line of SCRIPT is delivered (emotion, intensity, type, rate, pauses) and show it."""
    if planner not in ("auto", *PLANNERS):
        err.print(f"[red]error:[/red] unknown planner {planner!r}: use auto, {', '.join(PLANNERS)}", highlight=False)
        raise typer.Exit(2)
    parsed = parse(read_script(script))
    settings = PlannerSettings(use_cache=cache, budget=budget,
                               **{k: v for k, v in (("model", model), ("http_url", url), ("http_model", http_model))
                                  if v})
    columns = [TextColumn("planning"), BarColumn(), TextColumn("{task.completed}/{task.total} lines"),
               TimeElapsedColumn()]
    with Progress(*columns, console=err, transient=True, disable=json_out) as bar:
        task = bar.add_task("plan", total=len(parsed.lines))
        plan = make_plan(parsed, planner, settings=settings,
                         progress=lambda done, total: bar.update(task, completed=done, total=total))
    if json_out:
        out.print_json(plan.model_dump_json())
        return
    fixed = [Column(name, no_wrap=True) for name in ("line", "speaker", "emotion", "intensity", "type", "rate",
                                                     "pauses")]  # only the note wraps on a narrow terminal
    table = Table(*fixed, Column("note", ratio=1),
                  title=f"plan by {plan.planner}" + (f" ({plan.model})" if plan.model else ""))
    for line, lp in zip(parsed.lines, plan.lines):
        pauses = f"{_seconds(lp.pause_before)} / {_seconds(lp.pause_after)}"
        note = lp.note + (" [fallback]" if lp.line_index in plan.fallbacks else "")
        table.add_row(str(line.index + 1), escape(line.speaker), lp.emotion, f"{lp.intensity:.2f}",
                      lp.sentence_type, f"{lp.rate:.2f}", pauses, escape(note))
    out.print(table)
    if plan.cached:
        out.print(f"{len(plan.cached)} of {len(plan.lines)} lines from the plan cache.")
    if plan.fallbacks:
        reasons = sorted(set(plan.fallbacks.values()))
        more = f" (+{len(reasons) - 3} more)" if len(reasons) > 3 else ""
        err.print(f"[yellow]{len(plan.fallbacks)} line(s) planned by rules instead:[/yellow] "
                  + escape("; ".join(reasons[:3]) + more), highlight=False)


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:g}s"

"""``vibevoice`` on the command line: thin commands over the library, one module per group.

``render``/``check`` (``render``), ``voices``/``clone``/``audit`` (``voices``), ``plan``, ``qa``,
``detect`` and ``preflight``, each in the module of that name; ``serve``/``worker`` (``farm``). ``preflight`` is imported when it runs:
the VibeVoice stack loads torch and transformers (seconds), which the other commands never need.
"""

from __future__ import annotations

import typer

from .detect import detect_command
from .farm import serve, worker
from .plan import plan_command
from .qa import qa_command
from .render import check, render
from .voices import audit_log, clone, list_voices

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="vibevoice on the command line: script → voices → render → export.")
app.command()(render)
app.command()(check)
app.command("voices")(list_voices)
app.command("clone")(clone)
app.command("audit")(audit_log)
app.command("plan")(plan_command)
app.command("qa")(qa_command)
app.command("detect")(detect_command)
app.command()(serve)
app.command()(worker)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False)
def preflight(ctx: typer.Context) -> None:
    """Estimate peak memory and time of a VibeVoice render, and say whether it fits (--help for options)."""
    from .preflight import preflight_command

    command = typer.Typer(add_completion=False)
    command.command()(preflight_command)
    command(ctx.args, prog_name="vibevoice preflight")

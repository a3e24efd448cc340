"""What every CLI command shares: the consoles, reading a script, and failing with a clear message.

Errors go to stderr with the script line they concern and a non-zero exit code (2 for bad input,
1 for a failed render, 130 for Ctrl-C); a stopped render always says how to resume it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from ..script import Script, ScriptError, parse_script

out = Console()
err = Console(stderr=True, soft_wrap=True)  # never break a message (or a path) mid-line

ScriptArg = Annotated[Path, typer.Argument(help="dialogue script (UTF-8 text); '-' reads standard input")]


def read_script(path: Path) -> bytes:
    try:
        return sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror}")


def parse(text: bytes | str) -> Script:
    try:
        return parse_script(text)
    except ScriptError as error:
        err.print(f"[red]The script has {error.total} problem(s):[/red]")
        err.print(str(error), highlight=False, markup=False)
        raise typer.Exit(2)


def print_flags(findings) -> None:
    """Content-filter findings, one per line, as warnings (blocked ones never get this far in render)."""
    for finding in findings:
        err.print("[yellow]content filter:[/yellow]", escape(str(finding)), highlight=False)


def fail(message: str) -> NoReturn:
    err.print("[red]error:[/red]", escape(message), highlight=False)
    raise typer.Exit(2)

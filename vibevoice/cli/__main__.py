"""``python -m vibevoice.cli`` = ``vibevoice``."""

from . import app

app()

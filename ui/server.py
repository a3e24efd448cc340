"""The page and the HTTP API in one FastAPI app, over one job service (``python app.py``, ``vibevoice serve``)."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no telemetry calls

import gradio as gr  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from vibevoice.api import create_api  # noqa: E402
from vibevoice.job.service import JobService  # noqa: E402

from .page import PLAYER_JS, build_page  # noqa: E402

# System fonts only: the default theme would ask a web font service, which an offline machine lacks.
THEME = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def create_app(workers: int = 1, service: JobService | None = None) -> FastAPI:
    """FastAPI with the API under /v1 and the Gradio page mounted at /; ``service`` defaults to local threads."""
    service = service or JobService(workers=workers)
    api = create_api(service)
    return gr.mount_gradio_app(api, build_page(service), path="/", js=PLAYER_JS, footer_links=["api"], theme=THEME)

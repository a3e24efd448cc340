"""Start VibeVoice WebUI: the page and the HTTP API in one process (``python app.py``).

Listens on 127.0.0.1:7860 unless ``--host``/``--port`` or ``VIBEVOICE_HOST``/``VIBEVOICE_PORT`` say
otherwise; ``--workers``/``VIBEVOICE_WORKERS`` sets how many jobs render at once.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no telemetry calls

import gradio as gr  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from ui.page import PLAYER_JS, build_page  # noqa: E402
from vibevoice.api import create_api  # noqa: E402
from vibevoice.job.service import JobService  # noqa: E402

# System fonts only: the default theme would ask a web font service, which an offline machine lacks.
THEME = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def create_app(workers: int = 1) -> FastAPI:
    """FastAPI with the API under /v1 and the Gradio page mounted at /."""
    service = JobService(workers=workers)
    api = create_api(service)
    return gr.mount_gradio_app(api, build_page(service), path="/", js=PLAYER_JS, footer_links=["api"], theme=THEME)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("VIBEVOICE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("VIBEVOICE_PORT", "7860")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("VIBEVOICE_WORKERS", "1")))
    args = parser.parse_args()
    print(f"VibeVoice WebUI on http://{args.host}:{args.port}  (API docs: /docs)", flush=True)
    uvicorn.run(create_app(args.workers), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

"""Start VibeVoice WebUI: the page and the HTTP API in one process (``python app.py``).

Listens on 127.0.0.1:7860 unless ``--host``/``--port`` or ``VIBEVOICE_HOST``/``VIBEVOICE_PORT`` say
otherwise; ``--workers``/``VIBEVOICE_WORKERS`` sets how many jobs render at once. Off loopback every
request needs the access token (``VIBEVOICE_TOKEN``, or one generated and printed here); see
``vibevoice.api.guard``. ``X-Forwarded-For`` is believed only from ``VIBEVOICE_TRUSTED_PROXIES``.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no telemetry calls

import gradio as gr  # noqa: E402
import uvicorn  # noqa: E402

from ui.page import PLAYER_JS, build_page  # noqa: E402
from vibevoice import paths  # noqa: E402
from vibevoice.api import create_api  # noqa: E402
from vibevoice.api.guard import MAX_CLIP_BYTES, Guard, Policy  # noqa: E402
from vibevoice.job.service import JobService  # noqa: E402

# System fonts only: the default theme would ask a web font service, which an offline machine lacks.
THEME = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def create_app(workers: int = 1, policy: Policy | None = None):
    """FastAPI with the API under /v1 and the Gradio page mounted at /, behind the guard."""
    service = JobService(workers=workers)
    api = create_api(service)
    page = build_page(service)
    app = gr.mount_gradio_app(api, page, path="/", js=PLAYER_JS, footer_links=["api"], theme=THEME,
                              allowed_paths=[str(paths.jobs_dir())], max_file_size=MAX_CLIP_BYTES)
    # Mounted (not launched), Gradio skips its check that a file path sent by a client is one it
    # received as an upload; marking the page as launched turns that check on (see ui/handlers too).
    page.has_launched = True
    return Guard(app, policy or Policy.for_address("127.0.0.1"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("VIBEVOICE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("VIBEVOICE_PORT", "7860")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("VIBEVOICE_WORKERS", "1")))
    args = parser.parse_args()
    policy = Policy.for_address(args.host)
    shown = "localhost" if args.host in ("0.0.0.0", "::") else args.host
    login = f"/?token={policy.token}" if policy.token and not os.environ.get("VIBEVOICE_TOKEN") else ""
    print(f"VibeVoice WebUI on http://{shown}:{args.port}{login}  (API docs: /docs)", flush=True)
    if policy.token and not os.environ.get("VIBEVOICE_TOKEN"):
        print(f"Access token (API: Authorization: Bearer …; page: log in): {policy.token}", flush=True)
    trusted = os.environ.get("VIBEVOICE_TRUSTED_PROXIES", "")
    uvicorn.run(create_app(args.workers, policy), host=args.host, port=args.port, log_level="warning",
                proxy_headers=bool(trusted), forwarded_allow_ips=trusted or None)


if __name__ == "__main__":
    main()

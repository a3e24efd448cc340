"""The page and the HTTP API in one app over one job service, behind the guard (``python app.py``,
``vibevoice serve``). ``serve`` prints the address (and the access token off loopback) and runs it."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no telemetry calls

import gradio as gr  # noqa: E402

from vibevoice.api import create_api  # noqa: E402
from vibevoice.api.guard import MAX_CLIP_BYTES, Guard, Policy  # noqa: E402
from vibevoice.job.service import JobService  # noqa: E402

from .page import PAGE_JS, build_page  # noqa: E402

# System fonts only: the default theme would ask a web font service, which an offline machine lacks.
THEME = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def create_app(workers: int = 1, policy: Policy | None = None, service: JobService | None = None):
    """FastAPI with the API under /v1 and the Gradio page mounted at /, behind the guard.

    ``service`` defaults to local render threads (``workers`` of them); ``vibevoice serve --queue``
    passes one whose jobs render on the farm.
    """
    service = service or JobService(workers=workers)
    api = create_api(service)
    page = build_page(service)
    app = gr.mount_gradio_app(api, page, path="/", js=PAGE_JS, footer_links=["api"], theme=THEME,
                              allowed_paths=[str(service.root)], max_file_size=MAX_CLIP_BYTES)
    # Mounted (not launched), Gradio skips its check that a file path sent by a client is one it
    # received as an upload; marking the page as launched turns that check on (see ui/handlers too).
    page.has_launched = True
    return Guard(app, policy or Policy.for_address("127.0.0.1"))


def serve(host: str, port: int, service: JobService | None = None, workers: int = 1, note: str = "") -> None:
    """Print where it listens (and the generated access token off loopback), then serve until stopped."""
    import uvicorn

    policy = Policy.for_address(host)
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    login = f"/?token={policy.token}" if policy.token and not os.environ.get("VIBEVOICE_TOKEN") else ""
    print(f"VibeVoice WebUI on http://{shown}:{port}{login}  (API docs: /docs){note}", flush=True)
    if policy.token and not os.environ.get("VIBEVOICE_TOKEN"):
        print(f"Access token (API: Authorization: Bearer …; page: log in): {policy.token}", flush=True)
    if service is None:  # jobs render here: the first Generate should find the voices loaded (issue 16)
        from vibevoice import warmup

        warmup.in_background(lambda line: print(line, flush=True))
    trusted = os.environ.get("VIBEVOICE_TRUSTED_PROXIES", "")
    uvicorn.run(create_app(workers, policy, service), host=host, port=port, log_level="warning",
                proxy_headers=bool(trusted), forwarded_allow_ips=trusted or None)

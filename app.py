"""Start VibeVoice WebUI: the page and the HTTP API in one process (``python app.py``).

Listens on 127.0.0.1:7860 unless ``--host``/``--port`` or ``VIBEVOICE_HOST``/``VIBEVOICE_PORT`` say
otherwise; ``--workers``/``VIBEVOICE_WORKERS`` sets how many jobs render at once. Off loopback every
request needs the access token (``VIBEVOICE_TOKEN``, or one generated and printed here); see
``vibevoice.api.guard``. ``X-Forwarded-For`` is believed only from ``VIBEVOICE_TRUSTED_PROXIES``.
The same app with its jobs on a render farm: ``vibevoice serve --queue redis://…``.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no telemetry calls

from ui.server import create_app, serve  # noqa: E402

__all__ = ["create_app", "main"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("VIBEVOICE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("VIBEVOICE_PORT", "7860")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("VIBEVOICE_WORKERS", "1")))
    args = parser.parse_args()
    serve(args.host, args.port, workers=args.workers)


if __name__ == "__main__":
    main()

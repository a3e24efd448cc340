"""Start VibeVoice WebUI: the page and the HTTP API in one process (``python app.py``).

Listens on 127.0.0.1:7860 unless ``--host``/``--port`` or ``VIBEVOICE_HOST``/``VIBEVOICE_PORT`` say
otherwise; ``--workers``/``VIBEVOICE_WORKERS`` sets how many jobs render at once.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no telemetry calls

import uvicorn  # noqa: E402

from ui.server import create_app  # noqa: E402

__all__ = ["create_app", "main"]


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

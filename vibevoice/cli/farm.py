"""``vibevoice serve`` (the page and the API; with ``--queue``, enqueue only) and ``vibevoice worker``
(render jobs from the farm's queue: one process per GPU). See README, "Render farm"."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import VibeVoiceError
from .common import fail

QueueOpt = Annotated[str, typer.Option("--queue", envvar="VIBEVOICE_QUEUE",
                                       help="Redis URL of the farm, e.g. redis://user:pass@host:6379/0 "
                                       "(rediss:// for TLS)")]
JobsDirOpt = Annotated[Path | None, typer.Option("--jobs-dir", envvar="VIBEVOICE_JOBS_DIR",
                                                 help="the shared jobs directory (same path on every box)")]


def serve(
    queue: Annotated[str | None, typer.Option("--queue", envvar="VIBEVOICE_QUEUE",
                                              help="Redis URL: enqueue jobs for `vibevoice worker`s instead of "
                                              "rendering here (default: render in this process)")] = None,
    jobs_dir: JobsDirOpt = None,
    host: Annotated[str, typer.Option(envvar="VIBEVOICE_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="VIBEVOICE_PORT")] = 7860,
    workers: Annotated[int, typer.Option(help="render threads when there is no --queue")] = 1,
) -> None:
    """Serve the page and the HTTP API; with --queue, jobs render on the farm's workers."""
    from ui.server import serve as serve_app

    from ..job.service import JobService

    try:
        executor = None
        if queue:
            from ..farm.executor import FarmExecutor

            executor = FarmExecutor(queue)
        service = JobService(jobs_dir, workers=workers, executor=executor)
    except VibeVoiceError as error:
        fail(str(error))
    mode = f"farm at {_redacted(queue)}" if queue else f"{workers} local render thread(s)"
    serve_app(host, port, service=service, note=f"; jobs in {service.root}; {mode}")


def worker(
    queue: QueueOpt,
    queues: Annotated[str, typer.Option(help="priorities to serve, in order")] = "high,default,low",
    engines: Annotated[str | None, typer.Option(help="engines to offer, e.g. kokoro,piper (default: what this "
                                                "box has; vibevoice when $VIBEVOICE_MODEL_DIR is set)")] = None,
    name: Annotated[str | None, typer.Option(help="worker name (default: RQ's, host and pid)")] = None,
    worker_ttl: Annotated[int, typer.Option(help="seconds before a silent worker counts as dead")] = 60,
    monitoring_interval: Annotated[int, typer.Option(help="seconds between heartbeats while rendering")] = 5,
    maintenance_interval: Annotated[int, typer.Option(help="seconds between sweeps for jobs of dead "
                                                      "workers")] = 30,
    burst: Annotated[bool, typer.Option(help="exit when the queues are empty")] = False,
) -> None:
    """Render jobs from the farm's queue (one process per GPU, e.g. with CUDA_VISIBLE_DEVICES=0)."""
    from ..farm import worker as farm_worker

    offered = [e.strip() for e in engines.split(",") if e.strip()] if engines else farm_worker.detect_engines()
    try:
        farm_worker.start_worker(queue, [q.strip() for q in queues.split(",") if q.strip()], offered, name=name,
                                 worker_ttl=worker_ttl, monitoring_interval=monitoring_interval,
                                 maintenance_interval=maintenance_interval, burst=burst)
    except VibeVoiceError as error:
        fail(str(error))


def _redacted(url: str) -> str:
    from ..farm.keys import redact

    return redact(url)

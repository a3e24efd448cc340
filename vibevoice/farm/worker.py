"""The worker side of the farm: ``vibevoice worker --queue redis://…`` (one process per GPU).

A forking RQ worker (a killed render process is noticed at once and the job retried; the worker
itself keeps heartbeating while a job renders, which ``SimpleWorker`` does not). Each job runs in a
fresh child ("work horse") forked from a worker that has already prepared the embedded engine's files,
so a job starts in about a second. The task, ``render``, takes the job's lease, opens the job in the
shared jobs directory and runs the same flow as the local threads (``job.service.run_queued``),
publishing live progress to Redis for the web process.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from ..errors import VibeVoiceError
from ..job.model import ACTIVE, Progress
from ..job.runner import Job
from ..job.service import run_queued
from . import keys
from .lease import Lease, LeaseLost

log = logging.getLogger(__name__)
LOG_TTL = 7 * 24 * 3600


def render(jobs_dir: str, job_id: str) -> str:
    """The RQ task: render job ``job_id`` of ``jobs_dir`` if it still wants rendering; say what happened."""
    from rq import get_current_job

    redis = get_current_job().connection
    lease = Lease(redis, job_id)
    if not lease.acquire(wait=lease.ttl + 2):
        return f"held by {lease.holder_now()}: a duplicate delivery, left alone"
    try:
        _event(redis, job_id, lease.holder, "lease")
        return _render_held(redis, lease, Path(jobs_dir) / job_id)
    finally:
        redis.delete(keys.progress_key(job_id))
        lease.release()


def _render_held(redis, lease: Lease, directory: Path) -> str:
    job_id = lease.job_id
    try:
        job = Job.open(directory)
    except VibeVoiceError:
        return "deleted before it started"
    if job.manifest.status not in ACTIVE:  # cancelled while it waited, or finished by an earlier delivery
        return f"nothing to do: the job is {job.manifest.status}"
    stop = threading.Event()
    if redis.exists(keys.cancel_key(job_id)):
        stop.set()  # cancelled between its dequeue and now: ``run`` records it as interrupted
    job.guard = lease.check

    def progress(p: Progress) -> None:
        state = {**p.__dict__, "holder": lease.holder, "at": time.time()}
        redis.set(keys.progress_key(job_id), json.dumps(state), ex=120)
        _event(redis, job_id, lease.holder, "chunk", p.done)

    try:
        with lease.kept(stop):
            run_queued(job, progress=progress, stop=stop)
    except LeaseLost as lost:
        log.warning("%s", lost)
        return "lease lost: stopped without writing"
    _event(redis, job_id, lease.holder, job.manifest.status)
    return job.manifest.status


def _event(redis, job_id: str, holder: str, what: str, done: int | None = None) -> None:
    """The job's trail (who rendered what, when): ``vibevoice:log:<job>``, kept a week."""
    entry = json.dumps({"holder": holder, "worker": os.environ.get("RQ_WORKER_ID"), "event": what, "done": done,
                        "at": time.time()})
    with redis.pipeline() as pipe:
        pipe.rpush(keys.log_key(job_id), entry).ltrim(keys.log_key(job_id), -2000, -1)
        pipe.expire(keys.log_key(job_id), LOG_TTL).execute()


def detect_engines() -> list[str]:
    """Engines this box can run: Kokoro always; Piper when installed; VibeVoice and Qwen3-TTS when their
    checkpoints are configured ($VIBEVOICE_MODEL_DIR, $VIBEVOICE_QWEN3_MODEL_DIR)."""
    from .. import engines
    from ..engines import piper

    found = ["kokoro"] + (["piper"] if piper.available() else [])
    model_dir = os.environ.get("VIBEVOICE_MODEL_DIR")
    if "vibevoice" in engines.available_engines() and model_dir and Path(model_dir).is_dir():
        found.append("vibevoice")
    if "qwen3" in engines.available_engines():
        from ..engines.qwen3.configuration import default_model_dir

        if (qwen3_dir := default_model_dir()) and Path(qwen3_dir).is_dir():
            found.append("qwen3")
    return found


def detect_devices() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return [f"cuda:{d}" for d in visible.split(",") if d.strip()] if visible else ["cpu"]


def warm_up() -> None:
    """Load what every render process needs once, before forking: the embedded engine's converted graph
    and the English phonemizer (seconds each). The inference session itself starts threads, which a
    fork does not carry, so each render process opens its own (a fraction of a second)."""
    from .. import paths, phonemize
    from ..engines import kokoro_model

    kokoro_model.fast_model_bytes(paths.cache_dir())
    phonemize._english_g2p()


def start_worker(url: str, priorities: list[str], engines: list[str], name: str | None = None,
                 worker_ttl: int = 60, monitoring_interval: int = 5, maintenance_interval: int = 30,
                 burst: bool = False) -> None:
    """Serve ``priorities`` for ``engines`` until stopped (Ctrl-C / SIGTERM finish the current job)."""
    from rq import Queue, Worker
    from rq.serializers import JSONSerializer

    redis = keys.connect(url)
    queues = [Queue(q, connection=redis, serializer=JSONSerializer) for q in keys.queues_for(priorities, engines)]
    warm_up()
    worker = Worker(queues, connection=redis, name=name, serializer=JSONSerializer, worker_ttl=worker_ttl,
                    job_monitoring_interval=monitoring_interval, maintenance_interval=maintenance_interval)
    redis.hset(keys.workers_key(), worker.name, json.dumps({"engines": engines, "devices": detect_devices(),
                                                            "priorities": priorities, "pid": os.getpid()}))
    try:
        worker.work(burst=burst, logging_level="INFO", with_scheduler=False)
    finally:
        redis.hdel(keys.workers_key(), worker.name)

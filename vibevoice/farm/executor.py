"""The web side of the farm: ``JobService`` with RQ workers in place of its local threads.

``vibevoice serve --queue redis://…`` renders nothing itself: it prepares jobs (voices, plan
validation, admission, the manifest: under the job's lease) and enqueues one RQ job per render. The
page and the API read progress from Redis (``keys.progress_key``, written by the worker holding the
job), the manifest and chunks from the shared jobs directory, and ask Redis which workers are alive
to say why a queued job waits.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..job.model import Progress
from ..job.runner import Job
from . import keys, lease

RESULT_TTL = 24 * 3600
RETRIES = 5  # deliveries after a killed render process or a dead worker; each resumes from its last chunk


class FarmExecutor:
    """Enqueue, cancel and watch jobs on the farm at ``url`` (jobs under a directory every worker mounts)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.redis = keys.connect(url)
        self.root = Path()
        self._workers: tuple[float, dict[str, dict]] = (0.0, {})

    def start(self, root: Path) -> None:
        self.root = root  # nothing to recover: the workers own the jobs that are rendering

    def enqueue(self, job: Job) -> None:
        from rq import Queue, Retry
        from rq.serializers import JSONSerializer

        m = job.manifest
        self.redis.delete(keys.cancel_key(m.job_id))
        queue = Queue(keys.queue_name(m.priority, keys.engines_of(m)), connection=self.redis,
                      serializer=JSONSerializer)
        delivery = f"{job.dir.name}-{time.time_ns()}"
        self.redis.set(keys.delivery_key(m.job_id), delivery, ex=RESULT_TTL)
        queue.enqueue_call("vibevoice.farm.worker.render", args=(str(self.root.resolve()), job.dir.name),
                           timeout=-1, result_ttl=RESULT_TTL, failure_ttl=RESULT_TTL, retry=Retry(max=RETRIES),
                           job_id=delivery, description=f"render {job.dir.name}")

    def abandoned(self, job: Job) -> str | None:
        """Why the farm stopped trying to render ``job`` (every delivery's render process died), or None.

        RQ marks its job failed when the retries are spent, but nothing then writes the manifest: the
        worker that would have was the one that died. Without this the job said "rendering" forever."""
        from rq.exceptions import NoSuchJobError
        from rq.job import Job as Delivery
        from rq.job import JobStatus
        from rq.serializers import JSONSerializer

        delivery = self.redis.get(keys.delivery_key(job.manifest.job_id))
        if delivery is None:
            return None
        try:
            found = Delivery.fetch(delivery.decode(), connection=self.redis, serializer=JSONSerializer)
        except NoSuchJobError:
            return None
        if found.get_status() != JobStatus.FAILED:
            return None
        result = found.latest_result()
        last = (result.exc_string or "").strip().splitlines()[-1:] if result else []
        return (f"the farm gave up after {RETRIES + 1} tries, each render process died"
                + (f" (the last: {last[0][:200]})" if last else ""))

    def cancel(self, job: Job) -> None:
        """Flag it (a worker rendering it stops at its next chunk); if no worker holds it, mark it here."""
        job_id = job.dir.name
        self.redis.set(keys.cancel_key(job_id), "1", ex=7 * 24 * 3600)
        held = lease.Lease(self.redis, job_id)
        if not held.acquire(wait=0.5):
            return  # a worker has it: the flag stops it, and it writes ``interrupted`` itself
        try:
            current = Job.open(job.dir)
            if current.manifest.status == "queued":
                current.guard = held.check
                current.set_status("interrupted", "cancelled; resume to continue")
        finally:
            held.release()

    def live(self, job_id: str) -> Progress | None:
        raw = self.redis.get(keys.progress_key(job_id))
        if not raw:
            return None
        state = json.loads(raw)
        return Progress(**{k: state[k] for k in Progress.__dataclass_fields__})

    def waiting(self, job: Job) -> str | None:
        """A queued job no live worker can render says so, naming what the workers have."""
        needed = "+".join(keys.engines_of(job.manifest))
        workers = self.workers()
        if any(needed in keys.engines_served(w["queues"]) for w in workers.values()):
            return None
        have = sorted({e for w in workers.values() for e in w.get("engines", [])})
        return (f"waiting for a worker with the {needed} engine: " +
                (f"the {len(workers)} worker(s) running have {', '.join(have)}" if workers else "no worker is running") +
                "; start one with `vibevoice worker --queue …` on a box that has it")

    def holding(self, job_id: str, wait: float = 2.0):
        return lease.holding(self.redis, job_id, wait=wait)

    def wait_change(self, timeout: float, since: int | None = None) -> int:
        time.sleep(min(timeout, 0.5))  # workers write the manifests on other machines: nothing to count here
        return 0

    def workers(self) -> dict[str, dict]:
        """Live workers (RQ's registry) with their engines, devices and queues; cached for two seconds."""
        from rq import Worker
        from rq.serializers import JSONSerializer

        at, cached = self._workers
        if time.monotonic() - at < 2.0:
            return cached
        reported = {k.decode(): json.loads(v) for k, v in self.redis.hgetall(keys.workers_key()).items()}
        found = {}
        for worker in Worker.all(connection=self.redis, serializer=JSONSerializer):
            found[worker.name] = {**reported.get(worker.name, {}), "queues": worker.queue_names(),
                                  "state": worker.get_state()}
        self._workers = (time.monotonic(), found)
        return found

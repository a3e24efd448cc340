"""Render farm figures on this machine: real Redis, real ``vibevoice worker`` processes, loopback.

    python bench/bench_farm.py [--jobs 4] [--lines 4] [--skip-dead-worker]

Throughput with 1 and 2 workers (the same jobs, side by side in one run), the time from SIGKILL to
the job rendering again for a killed render process and for a whole killed worker, and the memory
of Redis and of a worker (main process and render process). Kokoro, no director.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("VIBEVOICE_HOME", tempfile.mkdtemp(prefix="bench-farm-"))

from conftest import free_port  # noqa: E402
from farm_support import Redis, Workers, holder_pid, redis_server, rss_bytes, trail  # noqa: E402

from vibevoice.farm.executor import FarmExecutor  # noqa: E402
from vibevoice.job.model import ACTIVE  # noqa: E402
from vibevoice.job.service import JobRequest, JobService  # noqa: E402


def script(n: int, lines: int) -> str:
    return "".join(f"[{'AB'[i % 2]}] Episode {n}, line {i}: a sentence of ordinary length for a podcast.\n"
                   for i in range(lines))


def wait(service, ids, until=lambda i: i.status not in ACTIVE, timeout=600):
    deadline = time.monotonic() + timeout
    while not all(until(service.info(j)) for j in ids):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def throughput(redis, home, n_workers: int, jobs: int, lines: int) -> dict:
    workers = Workers(redis.url, home)
    names = [f"t{n_workers}-{i}" for i in range(n_workers)]
    for name in names:
        workers.start(name)
    workers.wait_ready(redis.client, names)
    service = JobService(Path(tempfile.mkdtemp()) / "jobs", executor=FarmExecutor(redis.url))
    t0 = time.monotonic()
    ids = [service.submit(JobRequest(script=script(n, lines), planner="none")).id for n in range(jobs)]
    wait(service, ids)
    took = time.monotonic() - t0
    audio = sum(service.info(j).audio_seconds for j in ids)
    memory = {name: rss_bytes(p.pid) for name, p in workers.procs.items()}
    workers.stop_all()
    return {"workers": n_workers, "seconds": round(took, 1), "audio_seconds": round(audio, 1),
            "jobs_per_minute": round(jobs / took * 60, 2), "realtime_factor": round(audio / took, 2),
            "worker_rss_mb": round(max(memory.values()) / 2**20)}


def recovery(redis, home, whole_worker: bool) -> dict:
    workers = Workers(redis.url, home)
    names = [f"r{int(whole_worker)}-{i}" for i in (1, 2)]  # fresh names: RQ keeps a killed worker's a while
    for name in names:
        workers.start(name)
    workers.wait_ready(redis.client, names)
    service = JobService(Path(tempfile.mkdtemp()) / "jobs", executor=FarmExecutor(redis.url))
    job_id = service.submit(JobRequest(script=script(99, 12), planner="none")).id
    wait(service, [job_id], until=lambda i: i.done >= 2)
    horse = holder_pid(redis.client, job_id)
    horse_rss = rss_bytes(horse)
    owner = trail(redis.client, job_id)[0]["worker"]
    killed = time.monotonic()
    if whole_worker:
        workers.kill(owner, horse=horse)
    else:
        os.kill(horse, 9)
    while len({e["holder"] for e in trail(redis.client, job_id)}) < 2:
        time.sleep(0.05)
    resumed = time.monotonic() - killed
    wait(service, [job_id])
    workers.stop_all()
    return {"killed": "whole worker" if whole_worker else "render process", "seconds_to_resume": round(resumed, 1),
            "render_process_rss_mb": round(horse_rss / 2**20), "status": service.info(job_id).status}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--lines", type=int, default=4)
    parser.add_argument("--skip-dead-worker", action="store_true", help="skip the ~70 s whole-worker kill")
    args = parser.parse_args()
    home = Path(os.environ["VIBEVOICE_HOME"])
    redis = Redis(redis_server(), free_port())
    try:
        results = {"redis_rss_idle_mb": round(rss_bytes(redis.proc.pid) / 2**20, 1)}
        results["throughput"] = [throughput(redis, home, n, args.jobs, args.lines) for n in (1, 2)]
        kills = [False] if args.skip_dead_worker else [False, True]
        results["recovery"] = [recovery(redis, home, whole) for whole in kills]
        results["redis_used_memory_mb"] = round(redis.memory() / 2**20, 2)
        results["redis_rss_mb"] = round(rss_bytes(redis.proc.pid) / 2**20, 1)
        results["cpus"] = os.cpu_count()
    finally:
        redis.stop()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

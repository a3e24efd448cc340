"""Real Redis and real farm workers on loopback, for the farm tests and ``bench/bench_farm.py``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def redis_server() -> str | None:
    return shutil.which("redis-server") or next((p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server")
                                                  if os.path.exists(p)), None)


class Redis:
    """``redis-server --port <free> --save ''`` on 127.0.0.1: nothing on disk, gone with the process."""

    def __init__(self, binary: str, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--protected-mode", "yes"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        import redis

        self.client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline and self.proc.poll() is None, "redis-server did not start"
                time.sleep(0.02)

    def memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Workers:
    """``vibevoice worker`` processes, as an operator starts them, tuned to notice deaths quickly."""

    def __init__(self, url: str, home: Path, lease_ttl: float = 4.0) -> None:
        self.url, self.home, self.lease_ttl = url, home, lease_ttl
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, engines: str = "kokoro", queues: str = "high,default,low") -> subprocess.Popen:
        env = {**os.environ, "VIBEVOICE_HOME": str(self.home), "PYTHONPATH": str(ROOT),
               "VIBEVOICE_FARM_LEASE_TTL": str(self.lease_ttl), "OMP_NUM_THREADS": "1"}
        log = open(self.home / f"worker-{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "vibevoice.cli", "worker", "--queue", self.url,
                                 "--engines", engines, "--queues", queues, "--name", name,
                                 "--monitoring-interval", "1", "--maintenance-interval", "1", "--worker-ttl", "10"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def wait_ready(self, redis_client, names: list[str], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reported = {k.decode() for k in redis_client.hkeys("vibevoice:workers")}
            alive = {k.decode().rpartition(":")[2] for k in redis_client.smembers("rq:workers")}
            if set(names) <= reported & alive:
                return
            for name in names:
                assert self.procs[name].poll() is None, (self.home / f"worker-{name}.log").read_text()[-3000:]
            time.sleep(0.2)
        raise AssertionError(f"workers {names} did not come up")

    # RQ refuses a second live worker of the same name, so a replacement gets a new one.

    def kill(self, name: str, horse: int | None = None) -> None:
        """SIGKILL a whole worker (and its render process, which runs in its own process group)."""
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if horse:
            try:
                os.kill(horse, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGKILL)
        for proc in self.procs.values():
            proc.wait()
        self.procs.clear()


def trail(redis_client, job_id: str) -> list[dict]:
    return [json.loads(e) for e in redis_client.lrange(f"vibevoice:log:{job_id}", 0, -1)]


def holder_pid(redis_client, job_id: str) -> int | None:
    value = redis_client.get(f"vibevoice:lease:{job_id}")
    return int(value.decode().split(":")[1]) if value else None


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0

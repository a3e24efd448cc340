"""The render farm on real Redis with real ``vibevoice worker`` processes, on loopback only.

The test process plays the web process (``JobService`` with the farm's executor, as ``vibevoice serve
--queue`` builds it); two workers render. Kokoro, short scripts, no director: a few minutes in all,
most of it the one wait RQ imposes before it calls a silent worker dead (its 60 s floor).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import soundfile as sf
from conftest import free_port
from farm_support import Redis, Workers, holder_pid, redis_server, trail

from vibevoice.job.model import ACTIVE
from vibevoice.job.runner import Job
from vibevoice.job.service import JobRequest, JobService, prepare, run

LONG = "\n".join(f"[A] Sentence {n} of a job long enough to be caught mid-way." for n in range(1, 9)) + "\n"


def _script(n: int) -> str:
    return f"[A] Episode {n} begins here.\n[B] And this is its second line, number {n}.\n"


@pytest.fixture(scope="module")
def farm(app_home, tmp_path_factory):
    if os.environ.get("CI") != "true":
        pytest.importorskip("rq")  # in CI the farm extra is installed: a missing one is an ImportError
    binary = redis_server()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is missing: ./scripts/install.sh test installs Debian's redis-server")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    redis = Redis(binary, free_port())
    workers = Workers(redis.url, app_home)
    try:
        for name in ("w1", "w2"):
            workers.start(name)
        workers.wait_ready(redis.client, ["w1", "w2"])
        yield redis, workers
    finally:
        workers.stop_all()
        redis.stop()


@pytest.fixture
def web(farm, tmp_path):
    from vibevoice.farm.executor import FarmExecutor

    redis, workers = farm
    n = 3
    while len(workers.procs) < 2:  # a test that killed a worker leaves the next one two (a new name: RQ
        while f"w{n}" in workers.procs or redis.client.exists(f"rq:worker:w{n}"):  # keeps a dead one's a while)
            n += 1
        workers.start(f"w{n}")
    workers.wait_ready(redis.client, list(workers.procs))
    return JobService(tmp_path / "jobs", executor=FarmExecutor(redis.url))


def _wait(service: JobService, job_id: str, timeout: float = 240, until=lambda i: i.status not in ACTIVE):
    deadline = time.monotonic() + timeout
    while not until(info := service.info(job_id)):
        assert time.monotonic() < deadline, f"job {job_id} stuck: {info}"
        time.sleep(0.1)
    return info


def _embedded_chunks(tmp_path, script: str) -> list[np.ndarray]:
    job = prepare(tmp_path / f"embedded-{abs(hash(script))}", JobRequest(script=script, planner="none"))
    run(job)
    return [job.chunk_audio(c) for c in job.manifest.chunks]


def _chunks(service: JobService, job_id: str) -> list[np.ndarray]:
    job = Job.open(service.root / job_id)
    return [job.chunk_audio(c) for c in job.manifest.chunks]


def _one_holder_at_a_time(events: list[dict]) -> list[str]:
    """The holders in the order they had the job; a holder never comes back once another took over."""
    order = []
    for event in events:
        if not order or order[-1] != event["holder"]:
            assert event["holder"] not in order, f"two holders interleaved: {events}"
            order.append(event["holder"])
    return order


def test_two_workers_render_four_jobs_exactly_like_the_embedded_engine(web, farm, tmp_path):
    redis, _ = farm
    ids = [web.submit(JobRequest(script=_script(n), planner="none")).id for n in range(4)]
    infos = [_wait(web, job_id) for job_id in ids]
    assert [i.status for i in infos] == ["done"] * 4, infos
    used = {e["worker"] for job_id in ids for e in trail(redis.client, job_id)}
    assert used == {"w1", "w2"}
    for n, job_id in enumerate(ids):
        expected = _embedded_chunks(tmp_path, _script(n))
        got = _chunks(web, job_id)
        assert len(got) == len(expected) and all(np.array_equal(a, b) for a, b in zip(got, expected))
        wav = sf.read(web.output_path(job_id, "wav"), dtype="float32")[0]
        assert wav.size > sum(c.size for c in got) * 0.9


def test_a_killed_render_process_is_retried_and_resumes_from_its_last_chunk(web, farm, tmp_path):
    redis, _ = farm
    job_id = web.submit(JobRequest(script=LONG, planner="none")).id
    seen = _wait(web, job_id, until=lambda i: i.done >= 2 and i.current_line is not None)
    assert seen.status == "rendering" and seen.eta_seconds is not None, "the web process sees live progress"
    victim = holder_pid(redis.client, job_id)
    os.kill(victim, 9)
    done_at_kill = web.info(job_id).done
    info = _wait(web, job_id, timeout=120)
    assert info.status == "done" and info.done == info.total
    events = trail(redis.client, job_id)
    holders = _one_holder_at_a_time(events)
    assert len(holders) == 2 and str(victim) in holders[0]
    resumed = [e for e in events if e["holder"] == holders[1] and e["event"] == "chunk"]
    assert resumed[0]["done"] >= done_at_kill, "the retry resumed from the last finished chunk"
    got, expected = _chunks(web, job_id), _embedded_chunks(tmp_path, LONG)
    assert all(np.array_equal(a, b) for a, b in zip(got, expected)) and len(got) == len(expected)


def test_a_killed_worker_is_replaced_by_the_other_one(web, farm, tmp_path):
    redis, workers = farm
    job_id = web.submit(JobRequest(script=LONG, planner="none")).id
    _wait(web, job_id, until=lambda i: i.done >= 2)
    owner = trail(redis.client, job_id)[0]["worker"]
    killed = time.monotonic()
    workers.kill(owner, horse=holder_pid(redis.client, job_id))  # the whole box: worker and render process
    info = _wait(web, job_id, timeout=150)
    took = time.monotonic() - killed
    assert info.status == "done" and info.done == info.total
    events = trail(redis.client, job_id)
    holders = _one_holder_at_a_time(events)
    assert len(holders) == 2 and len({e["worker"] for e in events}) == 2 and events[-1]["worker"] != owner
    assert took < 120, f"the dead worker's job waited {took:.0f} s"
    got, expected = _chunks(web, job_id), _embedded_chunks(tmp_path, LONG)
    assert all(np.array_equal(a, b) for a, b in zip(got, expected)) and len(got) == len(expected)


def test_a_job_whose_every_render_process_dies_ends_failed_not_rendering_forever(web, farm):
    """RQ stops redelivering after its retries; the job then says so instead of "rendering" for ever."""
    from vibevoice.farm.executor import RETRIES

    redis, _ = farm
    job_id = web.submit(JobRequest(script=LONG, planner="none")).id
    killed: set[int] = set()
    deadline = time.monotonic() + 240
    while (info := web.info(job_id)).status in ACTIVE:
        assert time.monotonic() < deadline, f"still {info.status} after {len(killed)} kills: {info}"
        pid = holder_pid(redis.client, job_id)
        if pid and pid not in killed:
            try:
                os.kill(pid, 9)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    assert info.status == "failed" and len(killed) == RETRIES + 1, (info, killed)
    assert f"gave up after {RETRIES + 1} tries" in info.message and "resume to retry" in info.message
    assert info.done < info.total  # and what was rendered is kept for the resume
    assert web.resume(job_id).status == "queued"
    assert _wait(web, job_id).status == "done"


def test_cancel_queued_and_running_jobs_and_priorities(web, farm):
    redis, _ = farm
    busy = [web.submit(JobRequest(script=LONG, planner="none")).id for _ in range(2)]
    for job_id in busy:
        _wait(web, job_id, until=lambda i: i.status == "rendering")
    low = web.submit(JobRequest(script=_script(10), planner="none", priority="low")).id
    cancelled = web.submit(JobRequest(script=_script(11), planner="none")).id
    high = web.submit(JobRequest(script=_script(12), planner="none", priority="high")).id
    queued = web.cancel(cancelled)
    assert queued.status == "interrupted" and queued.message.startswith("cancelled")
    running = web.cancel(busy[0])
    stopped = _wait(web, busy[0])
    assert running.id == busy[0] and stopped.status == "interrupted" and 0 < stopped.done < stopped.total
    assert _wait(web, high).status == "done" and _wait(web, low).status == "done"
    start = {j: trail(redis.client, j)[0]["at"] for j in (high, low)}
    assert start[high] < start[low], "the high-priority job started first though it was queued last"
    assert web.info(cancelled).done == 0  # a worker may have dequeued it, seen "interrupted" and left it
    assert not [e for e in trail(redis.client, cancelled) if e["event"] == "chunk"]
    web.resume(busy[0])
    assert _wait(web, busy[0]).status == "done" and _wait(web, busy[1]).status == "done"


def test_a_job_for_an_engine_no_worker_has_waits_and_says_why(web):
    info = web.submit(JobRequest(script="[A] Piper speaks this one.\n", voices={"A": "piper-joe"}, planner="none"))
    time.sleep(1.0)
    info = web.info(info.id)
    assert info.status == "queued" and "piper" in info.message and "kokoro" in info.message
    assert web.cancel(info.id).status == "interrupted"
    web.delete(info.id)

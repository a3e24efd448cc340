"""The render farm: the same jobs on many workers, through RQ on Redis (the ``farm`` extra).

One queue message is one whole job (its chunks stay in order on one worker, so a stateful engine's
state stays on one GPU); the job's files live in a jobs directory every box mounts at the same path,
so after a crash whichever worker picks the job up resumes it from its last finished chunk.

- ``keys``: the Redis names, the queue a job goes to (priority × the engines it needs), connecting.
- ``lease``: one writer per job: a lease renewed while rendering and checked before every manifest
  write, so a job delivered twice is never rendered by two workers at once.
- ``executor``: the web side (``vibevoice serve --queue``): enqueue, cancel, live progress, why a job
  waits. ``JobService`` uses it in place of its local threads; the page and API do not change.
- ``worker``: the worker side (``vibevoice worker``): the RQ task that opens the job and runs the one
  job flow (``job.service.run_queued``), and the forking RQ worker that reports its engines.

Nothing here is imported unless a queue is configured: the embedded default needs no Redis.
"""

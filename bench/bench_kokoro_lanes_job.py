"""A 12-line, two-speaker Kokoro job rendered in this process: wall, CPU, peak RSS and a digest of the
audio, to compare ``VIBEVOICE_KOKORO_WORKERS`` values in fresh processes, one after the other:

    for w in 1 2 1 2; do VIBEVOICE_KOKORO_WORKERS=$w PYTHONPATH=. .venv/bin/python bench/bench_kokoro_lanes_job.py; done

Not a test: it prints figures (use a warm ``VIBEVOICE_HOME``: the first run converts the graph).
"""

import hashlib
import os
import resource
import tempfile
import time
from pathlib import Path

from vibevoice.job.runner import Job
from vibevoice.script import parse_script
from vibevoice.voices import assign_voices, load_templates

lines = ["Welcome back to the show, everyone.", "Thanks for having me, it is good to be here.",
         "Today we talk about lighthouses and the people who kept them.", "A lonely job, by all accounts.",
         "Lonely, yes, but never quiet: the sea is loud at night.", "Did they keep journals?",
         "Many did, and some of them read like novels.", "Then let us read one of them together.",
         "The first entry is from a winter storm in eighteen ninety.", "What does it say?",
         "It says the lamp went out twice, and twice he climbed the stairs.", "That is devotion."]
text = "".join(f"[{'Alice' if i % 2 == 0 else 'Ben'}] {t}\n" for i, t in enumerate(lines))
script = parse_script(text)
d = Path(tempfile.mkdtemp(prefix="kokoro-lanes-job-"))
job = Job.create(d / "job", text, assign_voices(script.speakers, {}, {}, load_templates()))
wall, cpu = time.perf_counter(), time.process_time()
job.render()
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
chunks = job.manifest.chunks
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"workers={os.environ.get('VIBEVOICE_KOKORO_WORKERS', '(default)')} wall {wall:.1f}s cpu {cpu:.1f}s "
      f"peak RSS {peak:.0f} MB, audio {sum(ch.samples for ch in chunks) / 24000:.1f}s")
print("digest", hashlib.sha256(b"".join(job.chunk_audio(ch).tobytes() for ch in chunks)).hexdigest()[:16])

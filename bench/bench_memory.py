"""Peak memory of an export (and of a render) for 1-, 10- and 90-minute four-speaker jobs, side by side.

Rendering 90 minutes takes ~30 min on 2 cores, so the long jobs are *synthetic chunk sets*: the distinct
lines of ``bench_render.make_script`` are rendered once by Kokoro, then a job of the full length is
keyed in the same directory, where every repeated line finds its chunk already on disk (the real
timeline, real speech, ~2 000 chunks for 90 minutes; only the audio repeats). Each export runs in a
fresh process and prints its peak RSS (``ru_maxrss``) and the RSS right after imports; ``--in-memory``
also measures ``export.assemble`` (the whole programme in memory, the pre-streaming path) for
comparison, skipped over 10 minutes (it would need ~10 GB). ``--render`` adds a real render's peak
RSS for the shortest length (Kokoro loaded, director off). ``--chunks-from JOB_DIR`` skips rendering:
the lines of an already rendered job are repeated to each length, four speakers reusing its voices.
``--plan`` measures the local director planning the longest script, in the measuring process itself
(``VIBEVOICE_DIRECTOR_PROCESS=0``; a job runs it in a child process of its own): its peak, and what
is left after it lets its model go; ``--server N`` starts ``python app.py``, runs N small jobs through the API (local
director, Kokoro) and prints the server's RSS after start, at its peak and idle after the jobs.
``--cli`` runs whole jobs as a user does (``vibevoice render``: the local director, Kokoro, the export)
of each length and samples the RSS of all their processes every second, with the chunk cost (render
seconds per second of speech) in the first and last tenth of the job.
Run: ``.venv/bin/python bench/bench_memory.py [--minutes 1 10 90] [--in-memory] [--render] [--plan]
[--server 3] [--cli]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_render import make_script  # noqa: E402


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(root: Path, minutes_list: list[float]) -> dict[float, Path]:
    """Render the pool's distinct lines once, then key a job of each length over those chunks."""
    from vibevoice.job.model import RenderSettings
    from vibevoice.job.runner import Job
    from vibevoice.script import parse_script
    from vibevoice.voices import assign_voices, load_templates

    longest = make_script(max(minutes_list))
    distinct = list(dict.fromkeys(longest.splitlines()))
    unique_text = "\n".join(distinct) + "\n"
    voices = assign_voices(parse_script(longest).speakers, {}, {}, load_templates())
    settings = RenderSettings()
    base = root / "distinct"
    Job.create(base, unique_text, voices, settings).render()
    jobs = {}
    for minutes in minutes_list:
        target = root / f"job-{minutes:g}"
        shutil.copytree(base, target)
        job = Job.create(target, make_script(minutes), voices, settings)
        assert not job.pending, "every line's chunk should already be on disk"
        jobs[minutes] = target
    return jobs


def build_from(source: Path, root: Path, minutes_list: list[float]) -> dict[float, Path]:
    """Jobs of each length made from an already rendered job's chunks: its lines repeated, spoken in
    turn by four speakers who reuse its voices (a chunk's key is its voice and text, not the name)."""
    from vibevoice.audio import SAMPLE_RATE
    from vibevoice.job.runner import Job

    done = Job.open(source)
    lines = [(ln.speaker, ln.text) for ln in done.script.lines]
    seconds = sum(c.samples for c in done.manifest.chunks) / SAMPLE_RATE
    cast = {f"Speaker {i + 1}": done.manifest.voices[s] for i, s in
            enumerate([*done.script.speakers, *done.script.speakers][:4])}
    jobs = {}
    for minutes in minutes_list:
        repeats = max(1, round(minutes * 60 / seconds))
        speakers = list(cast)
        text, n = [], 0
        for r in range(repeats):
            for speaker, line in lines:
                pool = [s for s in speakers if cast[s] == done.manifest.voices[speaker]]
                text.append(f"[{pool[r % len(pool)]}] {line}")
                n += 1
        target = root / f"job-{minutes:g}"
        shutil.copytree(source, target)
        job = Job.create(target, "\n".join(text) + "\n", cast)
        assert not job.pending, "every line's chunk should already be on disk"
        jobs[minutes] = target
    return jobs


def measure_export(directory: Path, in_memory: bool) -> dict:
    from vibevoice import export
    from vibevoice.audio import SAMPLE_RATE
    from vibevoice.job.runner import Job

    job = Job.open(directory)
    base = _rss_mib()
    t0 = time.perf_counter()
    if in_memory:
        programme = export.assemble(job, stems=True)
        seconds = programme.audio.size / SAMPLE_RATE
    else:
        export.export_job(job, directory / "out" / "show.mp3", stems=True)
        seconds = sum(c.samples for c in job.manifest.chunks) / SAMPLE_RATE
    return {"base": base, "peak": _peak_mib(), "wall": time.perf_counter() - t0, "speech": seconds,
            "chunks": len(job.manifest.chunks)}


def measure_render(minutes: float) -> dict:
    from vibevoice.job.model import RenderSettings
    from vibevoice.job.runner import Job
    from vibevoice.script import parse_script
    from vibevoice.voices import assign_voices, load_templates

    text = make_script(minutes)
    voices = assign_voices(parse_script(text).speakers, {}, {}, load_templates())
    with tempfile.TemporaryDirectory() as tmp:
        base = _rss_mib()
        t0 = time.perf_counter()
        job = Job.create(Path(tmp) / "job", text, voices, RenderSettings())
        job.render()
        return {"base": base, "peak": _peak_mib(), "wall": time.perf_counter() - t0,
                "chunks": len(job.manifest.chunks), "speech": sum(c.samples for c in job.manifest.chunks) / 24000}


def measure_plan(minutes: float) -> dict:
    from vibevoice import delivery
    from vibevoice.script import parse_script

    script = parse_script(make_script(minutes))
    base = _rss_mib()
    t0 = time.perf_counter()
    plan = delivery.direct(script, "local")
    return {"base": base, "peak": _peak_mib(), "after": _rss_mib(), "wall": time.perf_counter() - t0,
            "lines": len(script.lines), "planner": plan.planner if plan else "none"}


def server_idle(jobs: int) -> None:
    """RSS of a running app: after start (the warm-up loads Kokoro), its peak while ``jobs`` small jobs
    run one after another (the local director loads for each), and idle 10 s after the last."""
    import threading
    import urllib.request

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import Server

    server = Server(Path(tempfile.mkdtemp()), env={"VIBEVOICE_PLANNER": "local"}).start()
    def rss(pid: int | None = None) -> float:
        try:
            status = Path(f"/proc/{pid or server.proc.pid}/status").read_text().splitlines()
        except OSError:
            return 0.0
        return next((int(ln.split()[1]) / 1024 for ln in status if ln.startswith("VmRSS")), 0.0)

    def children() -> float:  # the director's process, while it lives
        pid = server.proc.pid
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return sum(rss(int(k)) for k in kids)

    peak, done = [0.0], threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], rss())

    try:
        while "ready in" not in (server.home / "server.out").read_text() + server.log.read_text():
            time.sleep(0.5)
        started = rss()
        threading.Thread(target=watch, daemon=True).start()
        for n in range(jobs):
            body = json.dumps({"script": f"[A] Job {n + 1}: welcome back to the show.\n[B] Thanks, glad to be here!\n"})
            request = urllib.request.Request(f"{server.url}/v1/jobs", data=body.encode(),
                                             headers={"Content-Type": "application/json"})
            job_id = json.loads(urllib.request.urlopen(request).read())["id"]
            while json.loads(urllib.request.urlopen(f"{server.url}/v1/jobs/{job_id}").read())["status"] not in (
                    "done", "failed", "interrupted"):
                time.sleep(0.3)
        time.sleep(10)
        print(f"server | after start (Kokoro warm) {started:6.0f} MiB | peak over {jobs} jobs {peak[0]:6.0f} MiB | "
              f"idle after them {rss():6.0f} MiB (+ director's process {children():.0f} MiB)")
        idle = float(os.environ.get("VIBEVOICE_DIRECTOR_IDLE", 120))
        time.sleep(idle + 5)
        print(f"server | {idle + 15:.0f} s after the last job {rss():6.0f} MiB (+ director's process "
              f"{children():.0f} MiB)")
    finally:
        done.set()
        server.kill()


def cli_job(script: Path, work: Path) -> dict:
    """A whole job as a user runs it: ``vibevoice render`` (director, render, export in one command),
    its process tree's RSS sampled every second (the render process and the director's, summed)."""
    job_dir, out = work / "job", work / "out.mp3"
    command = [sys.executable, "-m", "vibevoice.cli", "render", str(script), "-o", str(out), "--job-dir", str(job_dir)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "VIBEVOICE_PLANNER": os.environ.get("VIBEVOICE_PLANNER", "auto")})
    t0, peak, main_peak, exported_at = time.perf_counter(), 0.0, 0.0, None
    while proc.poll() is None:
        pids = [proc.pid, *_descendants(proc.pid)]
        sizes = [_rss_of(pid) for pid in pids]
        peak, main_peak = max(peak, sum(sizes)), max(main_peak, sizes[0])
        if exported_at is None and (job_dir / "job.json").exists() and '"status": "rendered"' in _read(job_dir / "job.json"):
            exported_at = time.perf_counter()
        time.sleep(1.0)
    wall = time.perf_counter() - t0
    manifest = json.loads(_read(job_dir / "job.json"))
    chunks = manifest["chunks"]
    tenth = max(1, len(chunks) // 10)
    cost = [sum(c["render_seconds"] for c in part) / max(1e-9, sum(c["samples"] for c in part) / 24000)
            for part in (chunks[:tenth], chunks[-tenth:])]
    return {"rc": proc.returncode, "peak": peak, "main": main_peak, "wall": wall, "chunks": len(chunks),
            "speech": sum(c["samples"] for c in chunks) / 24000, "status": manifest["status"],
            "export": wall - (exported_at - t0) if exported_at else None, "cost": cost}


def _descendants(pid: int) -> list[int]:
    try:
        kids = [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return kids + [g for k in kids for g in _descendants(k)]


def _rss_of(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    return next((int(ln.split()[1]) / 1024 for ln in status if ln.startswith("VmRSS")), 0.0)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _child(*args: str, planner: str = "none") -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True,
                         env={**os.environ, "VIBEVOICE_PLANNER": planner, "VIBEVOICE_DIRECTOR_PROCESS": "0"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 90])
    parser.add_argument("--in-memory", action="store_true", help="also measure the in-memory assembly (≤ 10 min)")
    parser.add_argument("--render", action="store_true", help="also measure a real render of the shortest length")
    parser.add_argument("--chunks-from", type=Path, help="a rendered job whose chunks to repeat (no rendering)")
    parser.add_argument("--plan", action="store_true", help="the local director planning the longest script")
    parser.add_argument("--server", type=int, metavar="JOBS", help="the app's RSS after start, over N jobs, idle")
    parser.add_argument("--skip-export", action="store_true", help="no export measurements")
    parser.add_argument("--cli", action="store_true", help="whole CLI jobs (plan, render, export) of each length")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, value = args.child
        result = (measure_render(float(value)) if kind == "render" else measure_plan(float(value)) if kind == "plan"
                  else measure_export(Path(value), kind == "memory"))
        print(json.dumps(result))
        return
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if args.server:
        server_idle(args.server)
    if args.plan:
        r = _child("plan", str(max(args.minutes)), planner="local")
        print(f"{max(args.minutes):>5g} min | {r['lines']:>5} lines  | director ({r['planner']}) | peak RSS "
              f"{r['peak']:6.0f} MiB (after imports {r['base']:4.0f}, after planning {r['after']:4.0f}) | "
              f"wall {r['wall']:6.1f} s")
    if args.cli:
        for minutes in args.minutes:
            with tempfile.TemporaryDirectory() as tmp:
                script = Path(tmp) / "script.txt"
                script.write_text(make_script(minutes))
                r = cli_job(script, Path(tmp))
            export = f"{r['export']:.0f} s" if r["export"] is not None else "?"
            print(f"{minutes:>5g} min | {r['chunks']:>5} chunks | speech {r['speech'] / 60:6.1f} min | vibevoice render "
                  f"({r['status']}, rc {r['rc']}) | peak RSS, all its processes {r['peak']:6.0f} MiB (render process "
                  f"{r['main']:4.0f}) | wall {r['wall']:6.0f} s, export {export} | chunk cost first/last tenth "
                  f"{r['cost'][0]:.2f}/{r['cost'][1]:.2f} s per s")
    if args.skip_export:
        return
    with tempfile.TemporaryDirectory() as tmp:
        jobs = build_from(args.chunks_from, Path(tmp), args.minutes) if args.chunks_from else \
            build(Path(tmp), args.minutes)
        for minutes, directory in jobs.items():
            rows = [("streamed export", _child("export", str(directory)))]
            if args.in_memory and minutes <= 10:
                rows.append(("in-memory assemble", _child("memory", str(directory))))
            for label, r in rows:
                print(f"{minutes:>5g} min | {r['chunks']:>5} chunks | speech {r['speech'] / 60:6.1f} min | {label:<18} | "
                      f"peak RSS {r['peak']:6.0f} MiB (after imports {r['base']:4.0f}) | wall {r['wall']:6.1f} s")
    if args.render:
        r = _child("render", str(min(args.minutes)))
        print(f"{min(args.minutes):>5g} min | {r['chunks']:>5} chunks | speech {r['speech'] / 60:6.1f} min | "
              f"{'render (Kokoro)':<18} | peak RSS {r['peak']:6.0f} MiB (after imports {r['base']:4.0f}) | "
              f"wall {r['wall']:6.1f} s")


if __name__ == "__main__":
    main()

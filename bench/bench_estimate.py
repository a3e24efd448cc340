"""Render-time estimate vs measurement, cold and warm, for 1- and 10-minute four-speaker scripts, and
the end-to-end breakdown of the 10-minute job (director, synthesis, export: loudness, watermark, WAV,
FLAC, MP3, stems).

Each length runs in a fresh process (``VIBEVOICE_HOME`` in a temporary directory, so nothing learned
before counts; its cache is the install's, so the one-off conversions are not counted): job 1 is cold (the engine loads inside it), job 2 is warm (same process, different
lines of the same length). Before each job the bench prints what ``vibevoice check`` and the page would
say: the estimate from the reference constants, and (job 2) the estimate after job 1 taught this
machine's speed (``estimate.learn``). Lines are distinct English dialogue lines (the planner's labelled
set, recombined), so no chunk is found already rendered.
Run: ``.venv/bin/python bench/bench_estimate.py [--minutes 1 10] [--planner auto]``. Figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEAKERS = ["Host", "Guest", "Critic", "Editor"]


def distinct_script(minutes: float, variant: int) -> str:
    """About ``minutes`` of speech in distinct lines (no two chunks alike), four speakers in turn."""
    rows = [json.loads(r) for r in (ROOT / "bench/data/planner_labels.jsonl").read_text().splitlines() if r]
    texts = [r["line"].split("] ", 1)[1] for r in rows if r["line"].startswith("[") and "] " in r["line"]]
    texts = [t for t in texts if all("\u4e00" > ch for ch in t)]  # English only
    lines, seconds, i = [], 0.0, 0
    while seconds < minutes * 60:
        n = len(texts)
        a, b = texts[(i + variant * 37) % n], texts[(i * 7 + 3 + variant + i // n) % n]
        text = a if i < len(texts) and variant == 0 else f"{a} {b}"
        lines.append(f"[{SPEAKERS[i % 4]}] {text}")
        seconds += len(text) / 15 + 0.4
        i += 1
    return "\n".join(lines) + "\n"


def one_job(root: Path, text: str, planner: str) -> dict:
    """Render and export ``text`` as a job; the estimate said beforehand and what each phase took."""
    from vibevoice import estimate
    from vibevoice.job.service import JobRequest, prepare, run

    job = prepare(root, JobRequest(script=text, planner=planner))
    chosen = estimate.planner_name(planner)
    said = estimate.render_seconds(job.script, job.manifest.voices, chosen)
    stamps: dict[str, float] = {}

    def chunk_started(_progress) -> None:  # reported as each chunk starts and once when all are done
        stamps.setdefault("render", time.perf_counter())
        stamps["last"] = time.perf_counter()

    t0 = time.perf_counter()
    run(job, progress=chunk_started)
    end = time.perf_counter()
    render_start, render_end = stamps.get("render", t0), stamps.get("last", t0)
    audio = sum(c.samples for c in job.manifest.chunks) / 24000
    return {"estimate": said, "measured": end - t0, "direct": render_start - t0, "synthesis": render_end - render_start,
            "export": end - render_end, "audio": audio, "lines": len(job.script.lines), "planner": chosen,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child(minutes: float, planner: str) -> None:
    from vibevoice import paths

    converted = paths.cache_dir()  # the install's conversions (the warm-up did them): not a job's cost
    root = Path(tempfile.mkdtemp())
    os.environ["VIBEVOICE_HOME"] = str(root / "home")
    (root / "home").mkdir()
    (root / "home" / "cache").symlink_to(converted)
    results = [one_job(root / f"job{n}", distinct_script(minutes, n), planner) for n in (0, 1)]
    print(json.dumps(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10])
    parser.add_argument("--planner", default="auto")
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child, args.planner)
    print(f"load average {os.getloadavg()[0]:.1f} at start")
    print(f"{'script':>8} {'job':>5} {'planner':>7} {'estimate':>9} {'measured':>9} {'ratio':>6}  breakdown")
    for minutes in args.minutes:
        out = subprocess.run([sys.executable, __file__, "--child", str(minutes), "--planner", args.planner],
                             capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        for name, r in zip(("cold", "warm"), json.loads(out.stdout.strip().splitlines()[-1])):
            rtf = r["measured"] / r["audio"]
            print(f"{minutes:>6g} m {name:>5} {r['planner']:>7} {r['estimate']:>8.1f}s {r['measured']:>8.1f}s "
                  f"{r['estimate'] / r['measured']:>6.2f}  direct {r['direct']:.1f}s, synthesis {r['synthesis']:.1f}s, "
                  f"export {r['export']:.1f}s; {r['audio'] / 60:.1f} min audio, {r['lines']} lines, "
                  f"end-to-end RTF {rtf:.3f} (synthesis {r['synthesis'] / r['audio']:.3f}); peak RSS {r['peak_mib']:.0f} MiB")
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()

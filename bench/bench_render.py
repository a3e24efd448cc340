"""End-to-end render benchmark: parse → synthesize → join → loudness → MP3, for 1- and 10-minute scripts.

Prints, per script: audio length, wall time, real-time factor (compute seconds per audio second), peak
RSS, and the mean per-chunk time at the start vs the end of the job (a long job must not slow down).
With ``--qa`` each script is also rendered with automatic QA on (every take heard by Whisper and the
speaker encoder), and the QA cost is printed as a ratio to the plain render. The export includes the
watermark, so its cost is inside "export".
Run: ``.venv/bin/python bench/bench_render.py [--minutes 1 10] [--qa]``. Figures, not a test.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from vibevoice.engines import SAMPLE_RATE, get_engine
from vibevoice.export import export_job
from vibevoice.job.model import RenderSettings
from vibevoice.job.runner import Job
from vibevoice.script import parse_script
from vibevoice.voices import assign_voices, load_templates

SENTENCES = [
    "Do you think AI can write novels?",
    "Sure, once it learns to tell stories, and that is harder than it sounds.",
    "I read a draft last week that was almost good, which is the worst kind of bad.",
    "What made it almost good?",
    "The dialogue was sharp, but nobody in it wanted anything.",
    "That's a problem for human writers too, honestly.",
    "Fair enough. So what should we tell our listeners who want to try it?",
    "Write the first page yourself, then see what the machine does with it.",
]
SPEAKERS = ["Host", "Guest", "Critic", "Editor"]


def make_script(minutes: float) -> str:
    """A 4-speaker script of about ``minutes`` of speech, from a fixed pool of sentences."""
    lines, seconds, i = [], 0.0, 0
    while seconds < minutes * 60:
        text = " ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(1 + i % 3))
        lines.append(f"[{SPEAKERS[i % 4]}] {text}")
        seconds += len(text) / 15 + 0.4
        i += 1
    return "\n".join(lines) + "\n"


def run(minutes: float, qa: bool = False) -> float:
    """Render and export one script; print the figures and return the wall time."""
    text = make_script(minutes)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        script = parse_script(text)
        voices = assign_voices(script.speakers, {}, {}, load_templates())
        job = Job.create(Path(tmp) / "job", text, voices, RenderSettings(qa=qa))
        stamps = []  # progress is reported as each chunk starts and once at the end: chunk n ends at stamp n+1
        job.render(progress=lambda p: stamps.append(time.perf_counter()))
        t_render = time.perf_counter()
        outputs = export_job(job, Path(tmp) / "out.mp3")
        t_end = time.perf_counter()
        audio_s = sum(c.samples for c in job.manifest.chunks) / SAMPLE_RATE
        per_chunk = [b - a for a, b in zip(stamps[:-1], stamps[1:])]
        tenth = max(1, len(per_chunk) // 10)
        first = sum(per_chunk[1:tenth + 1]) / tenth
        last = sum(per_chunk[-tenth:]) / tenth
        total = t_end - t0
        retaken = sum(len(c.takes) > 1 for c in job.manifest.chunks)
        label = f"qa on, {retaken} retaken" if qa else "qa off"
        print(f"{minutes:>5.0f} min script, {label} | {len(job.manifest.chunks):>4} chunks | speech {audio_s:7.1f} s | "
              f"wall {total:7.1f} s | RTF {total / audio_s:.3f} (synth {(t_render - t0) / audio_s:.3f}, "
              f"export {t_end - t_render:.1f} s) | peak RSS {_peak_rss_mib():.0f} MiB | "
              f"chunk first 10% {first:.2f} s, last 10% {last:.2f} s (ratio {last / first:.2f}) | "
              f"mp3 {Path(outputs['mp3']).stat().st_size / 1e6:.1f} MB")
        return total


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10])
    parser.add_argument("--qa", action="store_true", help="also render with automatic QA and print its cost")
    args = parser.parse_args()
    get_engine("kokoro").speak("Warm up.", load_templates()["deep-male"])  # load weights outside the timing
    for minutes in args.minutes:
        plain = run(minutes)
        if args.qa:
            checked = run(minutes, qa=True)
            print(f"      automatic QA costs {checked / plain:.2f}x the plain render's wall time")


if __name__ == "__main__":
    main()

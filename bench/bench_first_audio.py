"""Latency to first audio of the running app (embedded engine), side by side in one run.

Prints, for a 4-speaker script whose first line changes every run (nothing comes from a cache):

- click on Generate → the first sample playing in Chromium (Playwright, Debian's Chromium), for the
  page's Web Audio PCM player and for the MP3 ``<audio>`` it replaced (``?stream=mp3``): the very
  first click after the server started and printed its warm-up done (cold; after the install-time
  ``python -m vibevoice.warmup`` in the bench's fresh app home) and the median of ``--runs`` clicks
  on the warm server. Both are timed inside the page
  (``performance.now()`` at the click and when the first sample plays: ``window.vvFirstAudioAt``,
  or the ``<audio>``'s clock first moving for MP3);
- Chromium's CPU seconds per second, by process kind, for 5 s after the last job finished (the page
  idle: a running ``AudioContext`` would show here);
- API request → first audio byte of ``/v1/audio/speech``, PCM and MP3 (after its ID3 tags), median of
  ``--runs``, on an idle server; and PCM sent right after the previous response (its job still exporting);
- the first chunk's render time inside the page's and the API's jobs (from their manifests): does the
  page's job render slower, or start later?
- where the first chunk's time goes in-process: the director's first line (the job renders it while
  the director plans the rest) and its whole plan, then the first chunk's render (its first clause).

``--planner`` is what the server plans with (default: the page's default, ``auto`` = the local LLM
if it loads). Run: ``.venv/bin/python bench/bench_first_audio.py [--runs 5] [--planner rules]``.
Figures, not a test; on a loaded machine read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's package, not another one installed
from conftest import Server  # noqa: E402  (the same launcher the tests use)

SPEAKERS = ("Host", "Guest", "Critic", "Editor")
# The <audio>'s clock first moving, for this job's audio (not the previous job's finished file, still there).
MP3_CLOCK = ("(old) => { const tick = () => { const a = document.querySelector('#vv-audio');"
             " if (a && a.dataset.job !== old && a.currentTime > 0) window.vvFirstAudioAt = performance.now();"
             " else setTimeout(tick, 4); }; tick(); }")

# Waits inside the page (one call) rather than Playwright polling it every 20 ms: those polls are
# round trips through the driver's Node process and Chromium, work on the same two cores as the render.
UNTIL_HEARD = ("() => new Promise((done) => { const tick = () => window.vvFirstAudioAt || window.vvFinalAt"
               " ? done() : setTimeout(tick, 20); tick(); })")


def script(n: int) -> str:
    return (f"[Host] Welcome back to the show, this is take {n}.\n[Guest] Thanks for having me.\n"
            "[Critic] I have doubts about all of this.\n[Editor] Then let us hear them, briefly.\n")


def settled(server: Server, timeout: float = 120.0) -> None:
    """Wait until no job is queued or rendering, then 0.5 s. A response ends with its last audio, but its job then
    exports (WAV, MP3, stems: ~0.17 s for this script) on the one render worker, and a request sent
    meanwhile waits for that before its own job starts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{server.url}/v1/jobs", timeout=30) as response:
            if not any(job["status"] in ("queued", "rendering") for job in json.load(response)):
                break
        time.sleep(0.05)
    # Sent at once after the last job reads "done", a request still starts ~0.2 s late (0.73-0.79 s
    # against 0.53-0.56 s 0.5 s later; also when "done" is read from the manifest on disk, not through
    # the server). Not found: the worker's post-export work is ~3 ms, and no long GC runs meanwhile.
    time.sleep(0.5)


def first_byte(server: Server, fmt: str, n: int, settle: bool = True) -> float:
    """Seconds from the request to the first audio byte; ``settle``: on an idle server (the previous
    job's export finished), else right after the previous response, as a client reading sentence by
    sentence sends them."""
    if settle:
        settled(server)
    body = json.dumps({"model": "kokoro", "input": script(n), "voice": "onyx", "response_format": fmt}).encode()
    request = urllib.request.Request(f"{server.url}/v1/audio/speech", data=body,
                                     headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        head = response.read(10)  # an MP3 stream opens with its ID3 tags at once: audio comes after them
        skip = sum(b << 7 * (3 - i) for i, b in enumerate(head[6:10])) if head[:3] == b"ID3" else -10
        if skip >= 0:
            response.read(skip + 1)
        first = time.perf_counter() - t0
        response.read()
    return first


class Clicker:
    """One Chromium tab on the page; each ``click`` generates a new script and times its first sample."""

    def __init__(self, browser, url: str, mode: str) -> None:
        self.page, self.mode, self.steps = browser.new_page(), mode, []
        self.page.goto(url + ("/?stream=mp3" if mode == "mp3" else "/"), wait_until="networkidle")

    def click(self, n: int) -> float | None:
        """Seconds from the click to the first sample playing; None if nothing played while it rendered."""
        page = self.page
        page.bring_to_front()  # a tab in the background has its timers slowed down
        page.locator("#vv-script textarea").fill(script(n))
        page.wait_for_function("document.querySelector('#vv-speaker-3 :is(input, textarea)')?.value === 'Editor'")
        page.evaluate("window.vvFirstAudioAt = null; window.vvFinalAt = null")
        old = page.evaluate("document.querySelector('#vv-audio')?.dataset.job || ''")
        page.locator("#vv-generate").click()
        if self.mode == "mp3":
            page.evaluate(MP3_CLOCK, old)
        page.evaluate(UNTIL_HEARD)
        page.wait_for_timeout(0 if page.evaluate("window.vvFirstAudioAt") else 3000)  # the finished file may play
        seconds = page.evaluate("window.vvFirstAudioAt && (window.vvFirstAudioAt - window.vvClickAt) / 1000")
        if self.mode == "pcm" and seconds is not None:
            self.steps.append(page.evaluate("[window.vvStreamAt, window.vvFirstPieceAt, window.vvFirstAudioAt]"
                                            ".map((t, i, a) => (t - (i ? a[i - 1] : window.vvClickAt)) / 1000)"))
        page.wait_for_selector("#vv-audio[data-final='1']", state="attached", timeout=300_000)
        page.wait_for_function("document.querySelector('#vv-progress')?.dataset.status === 'done'", timeout=300_000)
        return seconds


IDLE_SECONDS = 5.0


def chromium_cpu() -> dict[str, float]:
    """CPU seconds (user + system) used so far by Chromium's processes, by kind (renderer, gpu-process, …)."""
    used: dict[str, float] = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").split()  # zygote children rewrite theirs as one string
            fields = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it exited meanwhile
        if not args or not args[0].endswith(b"chromium"):
            continue
        kind = next((a[7:].decode() for a in args if a.startswith(b"--type=")), "browser")
        used[kind] = used.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def browser_runs(server: Server, runs: int) -> dict[str, list[float]]:
    """The cold click first (PCM player), then ``runs`` warm clicks per player, interleaved."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--autoplay-policy=no-user-gesture-required"])
        players = {mode: Clicker(browser, server.url, mode) for mode in ("pcm", "mp3")}
        found = {"cold": [players["pcm"].click(0)], "pcm": [], "mp3": []}
        for n in range(1, runs + 1):
            for mode, player in players.items():
                found[mode].append(player.click(100 * n + len(found[mode])))
        found["steps"] = players["pcm"].steps[1:]
        time.sleep(1.0)  # the last job's finished file has taken over
        before = chromium_cpu()
        time.sleep(IDLE_SECONDS)
        found["idle"] = {kind: (chromium_cpu()[kind] - used) / IDLE_SECONDS for kind, used in before.items()}
        browser.close()
    return found


def in_process(planner: str) -> dict[str, list[float]]:
    """Where a job's first chunk waits, in-process (Kokoro warm): the director's first line (a job renders
    it while the rest is planned, ``job/ahead.py``) and its whole plan, for two new 4-line jobs in a row
    (the first loads the director, the second finds it kept) and a 40-line script; and the first chunk's
    render on its own."""
    from vibevoice.delivery import direct
    from vibevoice.job.runner import Job
    from vibevoice.script import parse_script
    from vibevoice.voices import assign_voices, load_templates
    from vibevoice.warmup import warm_up

    warm_up(lambda line: None)
    voices = assign_voices(list(SPEAKERS), {}, {}, load_templates())
    found: dict[str, list[float]] = {"first line": [], "whole plan": [], "first chunk": []}
    texts = [script(5998), script(5999), "".join(script(6000 + n) for n in range(10))]  # none planned before
    for text in texts:
        seen: list[float] = []
        t0 = time.perf_counter()
        direct(parse_script(text), planner, on_line=lambda line, seen=seen, t0=t0: seen.append(time.perf_counter() - t0))
        found["whole plan"].append(time.perf_counter() - t0)
        found["first line"].append(min(seen) if seen else found["whole plan"][-1])
    for n in (5998, 5999):
        job = Job.create(Path(tempfile.mkdtemp()), script(n), voices, planner="rules")
        job.direct()
        t0 = time.perf_counter()
        job._render_chunk(job.manifest.chunks[0], None)  # the first chunk (a clause) alone, as the job renders it
        found["first chunk"].append(time.perf_counter() - t0)
    found["first chunk text"] = job.manifest.chunks[0].text
    return found


def comma_pause(voices: tuple[str, ...] = ("deep-male", "warm-female")) -> list[tuple[str, float, float]]:
    """The first chunk is the first clause: per voice, the longest silence Kokoro leaves inside the whole
    first line (at its comma) vs the join of the two pieces (the clause's tail + ``SPLIT_GAP`` + the
    rest's head), in seconds: does the split pause where a reader would?"""
    import numpy as np

    from vibevoice.engines.base import Segment, split_text
    from vibevoice.engines.kokoro import KokoroEngine
    from vibevoice.export import SPLIT_GAP
    from vibevoice.voices import load_templates

    def quiet(audio: np.ndarray) -> np.ndarray:  # 10 ms frames below -45 dBFS
        frames = audio[: audio.size // 240 * 240].reshape(-1, 240)
        return 20 * np.log10(np.sqrt((frames ** 2).mean(1)) + 1e-9) < -45

    def runs(mask: np.ndarray) -> list[int]:
        edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0]))
        return [int(b - a) for a, b in zip(edges[::2], edges[1::2])]

    engine, templates, found = KokoroEngine(), load_templates(), []
    line = script(12).splitlines()[0].split("] ", 1)[1]  # "Welcome back to the show, this is take 12."
    head, rest = split_text(line, 400, 90)[:2]
    for name in voices:
        say = lambda text, v=templates[name]: engine.synthesize([Segment(0, "A", text, "en")], {"A": v}).audio  # noqa: E731
        whole, a, b = quiet(say(line)), quiet(say(head)), quiet(say(rest))
        inner = max(runs(whole[5:-5]) or [0]) / 100
        tail, lead = len(a) - len(np.trim_zeros((~a).astype(int), "b")), len(b) - len(np.trim_zeros((~b).astype(int), "f"))
        join = tail / 100 + SPLIT_GAP + lead / 100
        found.append((name, inner, join))
    return found


def _warmed_up(server: Server, director: bool, timeout: float = 120) -> str:
    """Wait for the server's start-up warm-up (Kokoro, then the director if it plans with one); its lines."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [ln for ln in (server.home / "server.out").read_text().splitlines() if "ready in" in ln or "failed" in ln]
        if len(lines) >= 1 + director or any("failed" in ln for ln in lines):
            return "; ".join(ln.removeprefix("warming up: ") for ln in lines)
        time.sleep(0.2)
    return "warm-up not finished"


def first_chunk_renders(home: Path) -> dict[str, list[float]]:
    """Each job's first chunk render time (its manifest's ``render_seconds``), for page and API jobs:
    told apart by the take number in their first line (page clicks < 1000, API requests ≥ 1000)."""
    found: dict[str, list[float]] = {"page": [], "api": []}
    for manifest in sorted((home / "jobs").glob("*/job.json")):
        m = json.loads(manifest.read_text())
        take = int(m["script"].split("this is take ", 1)[1].split(".", 1)[0])
        if take and m["chunks"] and m["chunks"][0]["status"] == "done":  # take 0: the cold click
            found["page" if take < 1000 else "api"].append(m["chunks"][0]["render_seconds"])
    return found


def _figures(values: list[float | None]) -> str:
    played = [x for x in values if x is not None]
    silent = f"; {len(values) - len(played)} never played before the finished file" if len(played) < len(values) else ""
    median = f"median {statistics.median(played):.2f} s" if played else "no run played"
    return f"{median}  (runs: {', '.join('-' if x is None else f'{x:.2f}' for x in values)}{silent})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--planner", default=None, help="the server's director (default: the page's default)")
    args = parser.parse_args()
    env = {"VIBEVOICE_PLANNER": args.planner} if args.planner else {}
    home = Path(tempfile.mkdtemp())
    subprocess.run([sys.executable, "-m", "vibevoice.warmup"], env={**os.environ, "VIBEVOICE_HOME": str(home)},
                   check=True, capture_output=True, cwd=ROOT)  # what install.sh does: conversions are not first-click costs
    server = Server(home, env=env).start()
    try:
        warmed = _warmed_up(server, director=args.planner in (None, "auto", "local"))
        clicks = browser_runs(server, args.runs)
        api = {fmt: [first_byte(server, fmt, 1000 * k + i) for i in range(args.runs)]
               for k, fmt in enumerate(("pcm", "mp3"), 1)}
        api["back to back"] = [first_byte(server, "pcm", 3000 + i, settle=False) for i in range(args.runs)]
    finally:
        server.kill()
    print(f"director: {args.planner or 'page default'}; {args.runs} runs each; server warm-up at start: {warmed}")
    print(f"click → first sample, cold (first click after start), Web Audio PCM: {_figures(clicks['cold'])}")
    print(f"click → first sample, warm, Web Audio PCM:  {_figures(clicks['pcm'])}")
    print(f"click → first sample, warm, <audio> MP3:    {_figures(clicks['mp3'])}")
    steps = [statistics.median(s[k] for s in clicks["steps"] if s[k] is not None) for k in range(3)]
    print(f"  of which (medians): click → job id back {steps[0]:.2f} s, → first PCM piece {steps[1]:.2f} s, "
          f"→ playing {steps[2]:.3f} s")
    print("Chromium idle after the last job (CPU seconds per second): " +
          ", ".join(f"{kind} {rate:.3f}" for kind, rate in sorted(clicks["idle"].items())))
    print(f"API → first audio byte, speech pcm:   {_figures(api['pcm'])}")
    print(f"API → first audio byte, speech mp3:   {_figures(api['mp3'])}  (both on an idle server)")
    print(f"API → first audio byte, speech pcm, sent as the previous response ended (its export still running): "
          f"{_figures(api['back to back'])}")
    renders = first_chunk_renders(home)
    print(f"  the first chunk's render inside those jobs (median): page {statistics.median(renders['page']):.2f} s, "
          f"API {statistics.median(renders['api']):.2f} s")
    os.environ["VIBEVOICE_HOME"] = str(home)  # the installed conversions; the plan cache holds no line used below
    for name, inner, join in comma_pause():
        print(f"first clause split, {name}: Kokoro's own pause inside the whole line {inner:.2f} s; "
              f"the join of the two pieces {join:.2f} s")
    found = in_process(args.planner or "auto")
    lines, whole = found["first line"], found["whole plan"]
    print(f"in-process: director's first line / whole plan — new job (loads it) {lines[0]:.2f} / {whole[0]:.2f} s; "
          f"next job (kept) {lines[1]:.2f} / {whole[1]:.2f} s; a 40-line script {lines[2]:.2f} / {whole[2]:.2f} s. "
          f"First chunk {found['first chunk text']!r} rendered alone: {found['first chunk'][1]:.2f} s "
          f"(first try {found['first chunk'][0]:.2f} s)")

if __name__ == "__main__":
    main()

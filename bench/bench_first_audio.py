"""Latency to first audio of the running app (embedded engine), side by side in one run.

Prints, for a 4-speaker script whose first line changes every run (nothing comes from a cache):

- click on Generate → the first sample playing in Chromium (Playwright, Debian's Chromium), for the
  page's Web Audio PCM player and for the MP3 ``<audio>`` it replaced (``?stream=mp3``): the very
  first click after the server started (cold; the install-time warm-up is assumed done) and the
  median of ``--runs`` clicks on the warm server. Both are timed inside the page
  (``performance.now()`` at the click and when the first sample plays: ``window.vvFirstAudioAt``,
  or the ``<audio>``'s clock first moving for MP3);
- API request → first byte of ``/v1/audio/speech``, PCM and MP3, median of ``--runs``;
- where the first chunk's time goes in-process: the director's plan, then the first chunk's render.

``--planner`` is what the server plans with (default: the page's default, ``auto`` = the local LLM
if it loads). Run: ``.venv/bin/python bench/bench_first_audio.py [--runs 5] [--planner rules]``.
Figures, not a test; on a loaded machine read the ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import Server  # noqa: E402  (the same launcher the tests use)

SPEAKERS = ("Host", "Guest", "Critic", "Editor")
MP3_CLOCK = ("(() => { const tick = () => { const a = document.querySelector('#vv-audio');"
             " if (a && a.currentTime > 0) window.vvFirstAudioAt = performance.now(); else requestAnimationFrame(tick); };"
             " requestAnimationFrame(tick); })()")


def script(n: int) -> str:
    return (f"[Host] Welcome back to the show, this is take {n}.\n[Guest] Thanks for having me.\n"
            "[Critic] I have doubts about all of this.\n[Editor] Then let us hear them, briefly.\n")


def first_byte(server: Server, fmt: str, n: int) -> float:
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

    def click(self, n: int) -> float:
        page = self.page
        page.locator("#vv-script textarea").fill(script(n))
        page.wait_for_function("document.querySelector('#vv-speaker-3 :is(input, textarea)')?.value === 'Editor'")
        page.evaluate("window.vvFirstAudioAt = null; window.vvFinalAt = null")
        if self.mode == "mp3":
            page.evaluate(MP3_CLOCK)
        page.locator("#vv-generate").click()
        page.wait_for_function("window.vvFirstAudioAt", timeout=300_000, polling=20)
        seconds = page.evaluate("(window.vvFirstAudioAt - window.vvClickAt) / 1000")
        if self.mode == "pcm":
            self.steps.append(page.evaluate("[window.vvStreamAt, window.vvFirstPieceAt, window.vvFirstAudioAt]"
                                            ".map((t, i, a) => (t - (i ? a[i - 1] : window.vvClickAt)) / 1000)"))
        page.wait_for_selector("#vv-audio[data-final='1']", state="attached", timeout=300_000)
        page.wait_for_function("document.querySelector('#vv-progress')?.dataset.status === 'done'", timeout=300_000)
        return seconds


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
        browser.close()
    return found


def in_process(planner: str, n: int = 999) -> tuple[float, float]:
    """Seconds for the director's plan, then for the first chunk's render, of a new job (Kokoro warm)."""
    from vibevoice.job.runner import Job
    from vibevoice.script import parse_script
    from vibevoice.voices import assign_voices, load_templates
    from vibevoice.warmup import warm_up

    warm_up(lambda line: None)
    text = script(n)
    voices = assign_voices(list(SPEAKERS), {}, {}, load_templates())
    assert parse_script(text).speakers == list(SPEAKERS)
    job = Job.create(Path(tempfile.mkdtemp()), text, voices, planner=planner)
    t0 = time.perf_counter()
    job.direct()
    planned = time.perf_counter() - t0
    job._render_chunk(job.manifest.chunks[0], None)  # the first chunk alone, as the render loop does it
    return planned, time.perf_counter() - t0 - planned


def _figures(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s  (runs: {', '.join(f'{x:.2f}' for x in values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--planner", default=None, help="the server's director (default: the page's default)")
    args = parser.parse_args()
    env = {"VIBEVOICE_PLANNER": args.planner} if args.planner else {}
    server = Server(Path(tempfile.mkdtemp()), env=env).start()
    try:
        clicks = browser_runs(server, args.runs)
        api = {fmt: [first_byte(server, fmt, 1000 * k + i) for i in range(args.runs)]
               for k, fmt in enumerate(("pcm", "mp3"), 1)}
    finally:
        server.kill()
    print(f"director: {args.planner or 'page default'}; {args.runs} runs each")
    print(f"click → first sample, cold (first click after start), Web Audio PCM: {clicks['cold'][0]:.2f} s")
    print(f"click → first sample, warm, Web Audio PCM:  {_figures(clicks['pcm'])}")
    print(f"click → first sample, warm, <audio> MP3:    {_figures(clicks['mp3'])}")
    steps = [statistics.median(s[k] for s in clicks["steps"]) for k in range(3)]
    print(f"  of which (medians): click → job id back {steps[0]:.2f} s, → first PCM piece {steps[1]:.2f} s, "
          f"→ playing {steps[2]:.3f} s")
    print(f"API → first audio byte, speech pcm:   {_figures(api['pcm'])}")
    print(f"API → first audio byte, speech mp3:   {_figures(api['mp3'])}")
    planned, first = in_process(args.planner or "auto")
    print(f"in-process, new job: director {planned:.2f} s, then first chunk rendered {first:.2f} s")


if __name__ == "__main__":
    main()

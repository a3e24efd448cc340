"""Latency to first audio and concurrent-job throughput of the running app (embedded engine).

Prints: API request → first MP3 byte of ``/v1/audio/speech`` for a 4-speaker script; click on
Generate → the page's player holding playable audio (Chromium via Playwright); and N concurrent jobs
through ``/v1/jobs``: wall time, audio seconds per wall second, and the server's peak RSS.
Run: ``.venv/bin/python bench/bench_first_audio.py [--jobs 4]``. Figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import Server  # noqa: E402  (the same launcher the tests use)

SCRIPT = ("[Host] Welcome back to the show.\n[Guest] Thanks for having me.\n"
          "[Critic] I have doubts about all of this.\n[Editor] Then let us hear them, briefly.\n")


def first_byte(server: Server) -> float:
    body = json.dumps({"model": "kokoro", "input": SCRIPT, "voice": "onyx", "response_format": "mp3"}).encode()
    request = urllib.request.Request(f"{server.url}/v1/audio/speech", data=body,
                                     headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        response.read(1)
        first = time.perf_counter() - t0
        response.read()
    return first


def first_audible_in_browser(server: Server) -> float:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page()
        page.goto(server.url, wait_until="networkidle")
        page.locator("#vv-script textarea").fill(SCRIPT)
        page.wait_for_function("document.querySelector('#vv-speaker-3 :is(input, textarea)')?.value === 'Editor'")
        t0 = time.perf_counter()
        page.locator("#vv-generate").click()
        page.wait_for_function("(() => { const a = document.querySelector('#vv-audio');"
                               " return a && a.readyState >= 2 && a.currentTime > 0; })()", timeout=300_000)
        elapsed = time.perf_counter() - t0
        browser.close()
    return elapsed


def concurrent_jobs(server: Server, count: int) -> tuple[float, float]:
    ids = []
    t0 = time.perf_counter()
    for _ in range(count):
        request = urllib.request.Request(f"{server.url}/v1/jobs", data=json.dumps({"script": SCRIPT}).encode(),
                                         headers={"Content-Type": "application/json"})
        ids.append(json.loads(urllib.request.urlopen(request).read())["id"])
    peak = [0.0]

    def watch_rss():
        while peak[0] >= 0:
            status = Path(f"/proc/{server.proc.pid}/status").read_text()
            rss = int(next(l for l in status.splitlines() if l.startswith("VmRSS")).split()[1]) / 1024
            peak[0] = max(peak[0], rss)
            time.sleep(0.2)

    threading.Thread(target=watch_rss, daemon=True).start()
    audio = 0.0
    for job_id in ids:
        while True:
            info = json.loads(urllib.request.urlopen(f"{server.url}/v1/jobs/{job_id}").read())
            if info["status"] in ("done", "failed", "interrupted"):
                audio += info["audio_seconds"]
                break
            time.sleep(0.2)
    wall = time.perf_counter() - t0
    result = peak[0]
    peak[0] = -1
    return wall, audio / wall, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4)
    args = parser.parse_args()
    server = Server(Path(tempfile.mkdtemp())).start()
    try:
        first_byte(server)  # warm-up: the first request loads the model
        api = [first_byte(server) for _ in range(3)]
        print(f"API request → first MP3 byte (4 speakers): median {sorted(api)[1]:.2f} s  (runs: "
              + ", ".join(f"{x:.2f}" for x in api) + ")")
        print(f"Generate click → playing audio in Chromium: {first_audible_in_browser(server):.2f} s")
        wall, speed, rss = concurrent_jobs(server, args.jobs)
        print(f"{args.jobs} concurrent jobs: {wall:.1f} s wall, {speed:.2f} s of audio per second, "
              f"server peak RSS {rss:.0f} MiB")
    finally:
        server.kill()


if __name__ == "__main__":
    main()

"""The page in a real browser (Debian's Chromium via Playwright), driven the way a user drives it."""

from __future__ import annotations

import shutil

import pytest
import soundfile as sf
from conftest import ARTIFACTS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCRIPT = "[Alice] Do you think AI can write novels?\n[Ben] Sure, once it learns to tell stories.\n"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--autoplay-policy=no-user-gesture-required"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.goto(server.url, wait_until="networkidle")
    yield page
    context.close()


def _snapshot(page, name: str) -> None:
    """A full-page screenshot in test-artifacts/, for a person to look at after the run."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def _choose_voice(page, row: int, name: str) -> None:
    box = page.locator(f"#vv-voice-{row} input")
    box.click()
    box.fill(name)
    page.get_by_role("option", name=name).first.click()


def test_paste_assign_generate_play_download(page, tmp_path):
    page.locator("#vv-script textarea").fill(SCRIPT)
    page.wait_for_function("document.querySelector('#vv-speaker-1 :is(input, textarea)')?.value === 'Ben'",
                           timeout=30_000)
    assert page.locator("#vv-speaker-0 :is(input, textarea)").input_value() == "Alice"
    _choose_voice(page, 1, "Warm female")
    assert "2 speaker(s)" in page.locator("#vv-estimate").inner_text()

    page.locator("#vv-generate").click()
    # The stream plays through Web Audio from its first chunk on, before the job is finished: samples
    # scheduled, the live clock moving, and the first sample heard before the finished file came.
    page.wait_for_function("window.vvFirstAudioAt", timeout=180_000)
    live = page.evaluate("(() => { const p = window.vvLive; return p && {job: p.dataset.job, received: p.received,"
                         " started: p.started, time: p.currentTime, final: !!document.querySelector('#vv-audio')}; })()")
    if live:  # (unless the finished file has already taken over: then the order below says it all)
        assert live["started"] and live["received"] > 0 and not live["final"]
    page.wait_for_function("window.vvPlayer()?.currentTime > 0.3", timeout=180_000)  # past the skipped lead-in
    # Then the finished file takes its place, at the live player's position.
    page.wait_for_selector("#vv-audio[data-final='1']", state="attached", timeout=180_000)
    assert page.evaluate("window.vvFirstAudioAt < window.vvFinalAt")
    assert page.evaluate("window.vvLive === null && !document.querySelector('#vv-live')")
    # Web Audio sleeps while the finished file plays (a running AudioContext keeps Chromium busy).
    page.wait_for_function("window.vvAudioState() === 'suspended'", timeout=10_000)
    duration = page.evaluate("document.querySelector('#vv-audio').duration")
    assert 3.0 < duration < 15.0
    status = page.locator("#vv-progress").get_attribute("data-status")
    assert status == "done"

    link = page.locator("#vv-files a[download$='.mp3']").first
    with page.expect_download() as download:
        link.click()
    target = tmp_path / "download.mp3"
    download.value.save_as(target)
    audio, rate = sf.read(target)
    assert abs(audio.shape[0] / rate - duration) < 0.2
    _snapshot(page, "page-generated.png")

    # After a reload the job is still listed, and the same cast gets the voices chosen before.
    job_id = page.locator("#vv-progress").get_attribute("data-job")
    # Starting another stream stops the live one: its fetch aborted, its sources stopped, its view gone.
    assert page.evaluate("(id) => { vvStream(id); const a = vvLive; vvStream(id);"
                         " return a.stopped && !a.view.isConnected && vvLive !== a && !vvLive.stopped; }", job_id)
    # The live player is what the transcript's ▶ seeks: it jumps within what has arrived, and pauses.
    page.wait_for_function("vvLive.started && vvLive.done && vvAudioState() === 'running'", timeout=60_000)
    heard = page.evaluate("(() => { vvPlayLine('0:01.0–0:02.0'); const t = vvPlayer().currentTime; vvLive.pause();"
                          " return [vvPlayer() === vvLive, t, vvLive.paused, vvLive.dataset.stopAt]; })()")
    assert heard[0] and abs(heard[1] - 1.0) < 0.1 and heard[2] and float(heard[3]) == 2.0
    page.evaluate("vvLive.stop()")
    page.reload(wait_until="load")  # (the page may reattach to a job still rendering: never idle)
    page.get_by_text("Jobs", exact=True).last.click()  # the list renders when its section opens
    page.wait_for_function(f"document.querySelector('#vv-jobs')?.textContent.includes('{job_id}')", timeout=30_000)
    page.locator("#vv-script textarea").fill(SCRIPT)
    page.wait_for_function("document.querySelector('#vv-speaker-1 :is(input, textarea)')?.value === 'Ben'",
                           timeout=30_000)
    assert page.locator("#vv-voice-1 input").input_value() == "Warm female"


def _problems_shown(page, script: str, waiting_for: str) -> str:
    """Type ``script`` and return what the page says under it once ``waiting_for`` appears there."""
    page.locator("#vv-script textarea").fill(script)
    problems = page.locator("#vv-problems")
    problems.get_by_text(waiting_for).wait_for(timeout=30_000)
    return problems.inner_text()


def test_bad_script_shows_line_numbers(page):
    text = _problems_shown(page, "[A] Fine.\n[] Who?\n[B]\n", "line 2")
    assert "line 2, column 1" in text and "line 3" in text
    assert "Traceback" not in page.content()
    _snapshot(page, "page-error.png")


def test_content_filter_explains_blocks_and_flags_as_you_type(page):
    script = "[A] Good evening.\n[B] I know where you live and I will shoot you.\n[A] Damn.\n"
    text = _problems_shown(page, script, "blocks this script")
    assert "line 2: blocked as violent-threat" in text and "line 3: flagged as profanity" in text
    page.locator("#vv-generate").click()  # generating anyway is refused with the same reason
    page.get_by_text("the content filter blocked this script").first.wait_for(timeout=30_000)
    # Switching the filter to "flag only" on the page turns the block into a flag.
    page.get_by_role("button", name="Responsible use").click()
    box = page.locator("#vv-content-filter input")
    box.click()
    page.get_by_role("option", name="Flag only").click()
    page.locator("#vv-problems").get_by_text("flagged 2 phrase(s)").wait_for(timeout=30_000)
    _snapshot(page, "page-content-filter.png")


def test_missing_model_directory_is_explained(page):
    page.locator("#vv-script textarea").fill(SCRIPT)
    page.get_by_text("Engine and settings").click()
    page.get_by_label("VibeVoice (local checkpoint)").check()
    page.get_by_label("VibeVoice model directory (converted checkpoint)").fill("/nonexistent/VibeVoice-1.5B")
    page.locator("#vv-generate").click()
    toast = page.get_by_text("/nonexistent/VibeVoice-1.5B").first
    toast.wait_for(timeout=60_000)
    assert "Traceback" not in page.content()
    _snapshot(page, "page-missing-model.png")


def test_a_model_directory_typed_just_after_switching_engines_is_kept(page):
    """The field follows the engine only while it holds a default, and that is decided in the browser: a
    folder typed right after switching is not overwritten by a late answer (it was, once, in CI)."""
    page.get_by_text("Engine and settings").click()
    field = page.get_by_label("VibeVoice model directory (converted checkpoint)")
    page.get_by_label("VibeVoice (local checkpoint)").check()
    field.fill("/models/mine")
    page.wait_for_timeout(1000)  # time for any answer to the engine change to land
    assert field.input_value() == "/models/mine"
    page.get_by_label("Qwen3-TTS (local checkpoint)").check()
    page.get_by_label("VibeVoice (local checkpoint)").check()
    page.wait_for_timeout(500)
    assert field.input_value() == "/models/mine"


def test_the_model_directory_follows_the_engine_while_it_holds_a_default(page, monkeypatch):
    """The browser-side rule itself, run by Chromium with configured checkpoints for both engines."""
    import json

    from ui import handlers

    monkeypatch.setenv("VIBEVOICE_MODEL_DIR", "/models/vibevoice")
    monkeypatch.setenv("VIBEVOICE_QWEN3_MODEL_DIR", "/models/qwen3")
    follow = handlers.engine_model_dir_js()

    def switch(label: str, current: str) -> str:
        return page.evaluate(f"({follow})({json.dumps(label)}, {json.dumps(current)})")

    assert switch("VibeVoice (local checkpoint)", "") == "/models/vibevoice"
    assert switch("Qwen3-TTS (local checkpoint)", "/models/vibevoice") == "/models/qwen3"
    assert switch("Qwen3-TTS (local checkpoint)", " /models/mine ") == " /models/mine "
    assert switch("Embedded (Kokoro, offline)", "/models/qwen3") == "/models/qwen3"


def test_director_plan_is_shown_before_rendering(page):
    page.locator("#vv-script textarea").fill("[A] (laughs) That is the funniest thing I have heard all week!\n"
                                             "[B] Is it, though?\n")
    page.locator("#vv-direct").click()
    page.wait_for_function("document.querySelector('#vv-transcript')?.textContent.includes('amused')",
                           timeout=60_000)
    text = page.locator("#vv-transcript").text_content()
    assert "Is it, though?" in text and "funniest" in text


def _transcript_cell(page, line: int, column: str):
    """The cell of ``column`` in transcript row ``line`` (1-based), by the header's position."""
    headers = [h.get_attribute("title") for h in page.locator("#vv-transcript th[role=columnheader]").all()]
    row = page.locator(f"#vv-transcript [role=row][data-index='{line - 1}']")
    return row.locator("[role=gridcell]").nth(headers.index(column))


def test_the_transcript_times_hears_auditions_and_rerenders_one_line(page, server):
    import json
    import time

    page.locator("#vv-script textarea").fill(SCRIPT)
    page.wait_for_function("document.querySelector('#vv-speaker-1 :is(input, textarea)')?.value === 'Ben'",
                           timeout=30_000)
    page.locator("#vv-generate").click()
    page.wait_for_selector("#vv-audio[data-final='1']", state="attached", timeout=180_000)
    job_id = page.locator("#vv-progress").get_attribute("data-job")
    # Each line gets its time in the finished audio, and rows are coloured by speaker.
    page.wait_for_function("(() => { const t = document.querySelector('#vv-transcript [role=row][data-index=\"1\"]');"
                           " return t && t.textContent.includes('–'); })()", timeout=60_000)
    assert "–" in _transcript_cell(page, 2, "time").inner_text()
    # The rows are painted every 250 ms, and Gradio redraws them as the table updates: wait for the paint.
    page.wait_for_function("document.querySelector('#vv-transcript [role=row][data-index=\"0\"]')"
                           "?.style.borderLeft.includes('solid')", timeout=10_000)
    assert "solid" in _transcript_cell(page, 1, "line").evaluate("cell => cell.parentElement.style.borderLeft")
    # Choose line 2 with the keyboard-reachable table, hear it in place: the player highlights that line.
    _transcript_cell(page, 2, "text").click()
    page.locator("#vv-line-note").get_by_text("Line 2").wait_for(timeout=30_000)
    page.locator("#vv-hear").click()
    page.wait_for_function("document.querySelector('#vv-transcript [role=row][data-index=\"1\"]')"
                           "?.getAttribute('aria-current') === 'true'", timeout=30_000)
    # Change its pace, audition the change alone, then re-render only that line.
    before = {c["line_index"]: c["key"] for c in _manifest(server, job_id)["chunks"]}
    cell = _transcript_cell(page, 2, "pace")
    cell.dblclick()
    page.keyboard.press("Control+A")
    page.keyboard.type("0.8")
    page.keyboard.press("Enter")
    page.locator("#vv-audition").click()
    page.locator("#vv-audition-audio a[download]").wait_for(state="attached", timeout=60_000)
    assert {c["line_index"]: c["key"] for c in _manifest(server, job_id)["chunks"]} == before, "audition saved"
    page.locator("#vv-rerender").click()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # the line's new chunk is rendered and the job exported again
        manifest = _manifest(server, job_id)
        if manifest["status"] == "done" and manifest["chunks"][1]["key"] != before[1]:
            break
        time.sleep(0.3)
    after = {c["line_index"]: c["key"] for c in _manifest(server, job_id)["chunks"]}
    assert after[0] == before[0] and after[1] != before[1]
    assert json.dumps(_manifest(server, job_id)["plan"]["lines"][1]["rate"]) == "0.8"
    _snapshot(page, "page-transcript.png")


def _manifest(server, job_id: str) -> dict:
    import json

    return json.loads((server.home / "jobs" / job_id / "job.json").read_text())


def test_qwen3_engine_and_a_designed_voice(page):
    page.locator("#vv-script textarea").fill(SCRIPT)
    page.wait_for_function("document.querySelector('#vv-speaker-1 :is(input, textarea)')?.value === 'Ben'",
                           timeout=30_000)
    page.get_by_text("Engine and settings").click()
    page.get_by_label("Qwen3-TTS (local checkpoint)").check()
    # Under Qwen3-TTS the speakers get its named voices, and the estimate asks for its checkpoint.
    page.wait_for_function("document.querySelector('#vv-voice-0 input')?.value.includes('Qwen3-TTS')",
                           timeout=30_000)
    page.locator("#vv-estimate").get_by_text("Qwen3-TTS checkpoint directory").wait_for(timeout=30_000)
    assert page.locator("#vv-temperature").is_visible() and page.locator("#vv-top-k").is_visible()
    page.get_by_text("Design a voice (Qwen3-TTS VoiceDesign)").click()
    page.locator("#vv-design-name textarea").fill("Night Host")
    page.locator("#vv-design-description textarea").fill("A calm, low male voice in his fifties, slightly husky")
    page.locator("#vv-design").click()
    page.locator("#vv-design-note").get_by_text("design-night-host").wait_for(timeout=30_000)
    _choose_voice(page, 1, "Night Host")  # the new voice is in the speakers' lists
    assert page.locator("#vv-voice-1 input").input_value() == "Night Host"
    _snapshot(page, "page-qwen3-designed-voice.png")

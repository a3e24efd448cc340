"""The page's player: the job's audio heard while it renders, then the finished file in its place.

A browser's ``<audio>`` buffers seconds of a progressive MP3 before it starts, so while a job renders
the page fetches the raw 16-bit PCM stream (``/v1/jobs/{id}/stream?format=pcm``) and plays it
through Web Audio: each piece becomes an ``AudioBuffer`` scheduled right after the previous one the
moment it arrives. ``window.vvPlayer()`` hands the transcript code whichever player is current; the
live one looks like an ``<audio>`` to it (``currentTime`` to read and set, ``paused``, ``play``,
``pause``, ``dataset``), since it keeps what it received and can seek within it. When the job is done
the finished, loudness-normalised file takes over at the same position (``vvFinal``). The click on
Generate is the user gesture that lets the ``AudioContext`` start, so it is created or resumed in
that click. ``?stream=mp3`` (or a browser without Web Audio) keeps the old ``<audio>`` stream.
``window.vvClickAt``, ``vvStreamAt`` (the job's id is back), ``vvFirstPieceAt`` (its first audio is
here) and ``vvFirstAudioAt`` (the first sample plays), all ``performance.now()``, time the click to
the first sample for ``bench/bench_first_audio.py``.
"""

from __future__ import annotations

LIVE_JS = """
() => {
  const AC = window.AudioContext || window.webkitAudioContext;
  const LEAD = 0.03;  // seconds between a piece arriving and it playing: room for the scheduler
  let ctx = null;
  window.vvAudioContext = () => {
    if (!AC) return null;
    if (!ctx || ctx.state === "closed") ctx = new AC({ latencyHint: "interactive" });
    if (ctx.state === "suspended") ctx.resume().catch(() => {});
    return ctx;
  };
  // A running AudioContext keeps Chromium's audio service rendering silence (its utility process used
  // ~0.016 s of CPU a second idle, 0.008 suspended); once no live player needs it, it sleeps until the
  // next click resumes it. (The renderer's own idle ~0.07-0.12 s a second is not from it: README.)
  window.vvAudioIdle = () => {
    if (ctx && ctx.state === "running" && !(window.vvLive && !window.vvLive.stopped)) ctx.suspend().catch(() => {});
  };
  window.vvAudioState = () => (ctx ? ctx.state : "none");  // read only: "running", "suspended", …
  document.addEventListener("click", (event) => {  // the user gesture: Web Audio may start from here on
    if (event.target.closest && event.target.closest("#vv-generate, #vv-resume, #vv-rerender")) {
      window.vvClickAt = performance.now(); window.vvAudioContext();
      window.vvStreamAt = window.vvFirstPieceAt = window.vvFirstAudioAt = null;
    }
  }, true);
  const clock = (s) => `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, "0")}`;

  class LivePlayer {
    constructor(jobId, box) {
      this.ctx = window.vvAudioContext(); this.rate = 24000; this.dataset = { job: jobId, stopAt: "" };
      this.pieces = []; this.received = 0;  // Float32Arrays in timeline order; samples received so far
      this.cursor = 0; this.origin = 0; this.sources = []; this.started = false;
      this.paused = false; this.pausedAt = 0; this.done = false; this.stopped = false;
      this.abort = new AbortController();
      this.view = document.createElement("div"); this.view.id = "vv-live"; this.view.dataset.job = jobId;
      this.button = document.createElement("button"); this.button.type = "button"; this.button.textContent = "⏸";
      this.button.onclick = () => { if (this.paused || this.ctx.state !== "running") this.play(); else this.pause(); };
      this.label = document.createElement("span"); this.label.textContent = " waiting for the first sentence…";
      this.view.append(this.button, this.label); box.appendChild(this.view);
      this.timer = setInterval(() => this.show(), 250);
    }
    get currentTime() {
      if (this.paused || !this.started) return this.pausedAt;
      return Math.max(0, Math.min(this.ctx.currentTime - this.origin, this.cursor / this.rate));
    }
    set currentTime(t) {
      this.stopSources();
      this.cursor = Math.max(0, Math.min(Math.round(t * this.rate), this.received)); this.pausedAt = this.cursor / this.rate;
      if (this.started && !this.paused) { this.origin = this.ctx.currentTime + LEAD - this.pausedAt; this.schedule(); }
    }
    get ended() { return this.done && this.started && this.currentTime >= this.received / this.rate - 0.01; }
    get duration() { return this.received / this.rate; }
    play() {
      if (this.ctx.state === "suspended") this.ctx.resume().catch(() => {});
      if (this.paused) { const from = this.ended ? 0 : this.pausedAt; this.paused = false; this.currentTime = from; }
      return Promise.resolve();
    }
    pause() { if (!this.paused) { this.pausedAt = this.currentTime; this.paused = true; this.stopSources(); } }
    stop() {
      this.stopped = true; this.pause(); this.abort.abort(); clearInterval(this.timer); this.view.remove();
    }
    stopSources() { for (const s of this.sources) { try { s.stop(); } catch (e) {} } this.sources = []; }
    show() {
      const blocked = this.ctx.state !== "running";  // no user gesture yet (a reload reattached to a job)
      const state = this.paused ? "paused" : this.ended ? "ended" : blocked ? "blocked" : this.started ? "playing" : "waiting";
      this.view.dataset.state = state; this.button.textContent = this.paused || blocked ? "▶" : "⏸";
      if (this.started) this.label.textContent = ` ${clock(this.currentTime)} (rendering: ${clock(this.duration)} so far)`;
    }
    add(samples) {
      window.vvFirstPieceAt = window.vvFirstPieceAt || performance.now();
      this.pieces.push({ at: this.received, data: samples }); this.received += samples.length;
      if (!this.started) this.begin(); else if (!this.paused) this.schedule();
    }
    begin() {  // skip the stream's leading digital silence (the lead-in): the first sound plays at once
      let first = 0;
      for (const p of this.pieces) {
        const i = p.data.findIndex((x) => x !== 0);
        if (i >= 0) { first = p.at + i; break; }
        first = p.at + p.data.length;
      }
      if (first >= this.received && !this.done) return;  // nothing audible yet
      this.started = true; this.cursor = first; this.pausedAt = first / this.rate;
      this.origin = this.ctx.currentTime + LEAD - this.pausedAt;
      const when = this.schedule();
      window.vvFirstScheduledAt = performance.now();
      const heard = () => {
        if (this.stopped) return;
        if (this.ctx.currentTime >= when) window.vvFirstAudioAt = window.vvFirstAudioAt || performance.now();
        else setTimeout(heard, 4);
      };
      heard();
    }
    schedule() {  // every received sample after the cursor, as buffers queued back to back
      let first = null;
      for (const p of this.pieces) {
        const end = p.at + p.data.length;
        if (end <= this.cursor) continue;
        const part = p.data.subarray(this.cursor - p.at);
        const buffer = this.ctx.createBuffer(1, part.length, this.rate);
        buffer.copyToChannel(part, 0);
        let when = this.origin + this.cursor / this.rate;
        const soonest = this.ctx.currentTime + LEAD;
        if (when < soonest) { this.origin += soonest - when; when = soonest; }  // an underrun: the clock waits
        const source = this.ctx.createBufferSource(); source.buffer = buffer; source.connect(this.ctx.destination);
        source.start(when); this.sources.push(source);
        source.onended = () => { this.sources = this.sources.filter((s) => s !== source); };
        first = first ?? when; this.cursor = end;
      }
      return first;
    }
    async run() {
      const response = await fetch(`/v1/jobs/${this.dataset.job}/stream?format=pcm`,
                                   { signal: this.abort.signal, cache: "no-store", credentials: "same-origin" });
      if (!response.ok) throw new Error(`stream: HTTP ${response.status}`);
      this.rate = +response.headers.get("X-Sample-Rate") || this.rate;
      const reader = response.body.getReader();
      let carry = new Uint8Array(0);
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const bytes = new Uint8Array(carry.length + value.length); bytes.set(carry); bytes.set(value, carry.length);
        const n = bytes.length >> 1, view = new DataView(bytes.buffer), samples = new Float32Array(n);
        for (let i = 0; i < n; i++) samples[i] = view.getInt16(2 * i, true) / 32768;
        carry = bytes.slice(2 * n);
        if (n) this.add(samples);
      }
      this.done = true; if (!this.started) this.begin();
    }
  }

  window.vvLive = null;
  window.vvPlayer = () => (window.vvLive && !window.vvLive.stopped ? window.vvLive : document.getElementById("vv-audio"));
  window.vvStreamLive = (jobId, box) => {
    const ctx = window.vvAudioContext();
    if (!ctx || new URLSearchParams(location.search).get("stream") === "mp3") return false;
    const live = new LivePlayer(jobId, box);
    window.vvLive = live;
    live.run().catch((error) => { if (!live.stopped) live.label.textContent = ` stream stopped (${error.message})`; });
    return true;
  };
}
"""

PLAYER_JS = """
() => {
  // While a job renders its audio plays live (LIVE_JS; an <audio> on the MP3 stream where Web Audio is
  // off); the finished file then replaces it at the same position, preloaded, so the switch has no gap.
  // Both are the same timeline, only the final one is loudness-normalised.
  const stopLive = () => { if (window.vvLive) { window.vvLive.stop(); window.vvLive = null; } };
  window.vvStream = (jobId) => {
    const box = document.getElementById("vv-player");
    if (!box || !jobId) return;
    window.vvStreamAt = performance.now(); stopLive(); box.innerHTML = "";
    if (window.vvStreamLive(jobId, box)) return;
    const a = document.createElement("audio");
    a.controls = true; a.autoplay = true; a.id = "vv-audio"; a.dataset.job = jobId;
    a.src = `/v1/jobs/${jobId}/stream`;
    box.appendChild(a);
    a.play().catch(() => {});
  };
  window.vvFinal = (jobId) => {
    const box = document.getElementById("vv-player");
    if (!box || !jobId) return;
    window.vvFinalAt = performance.now();
    const next = document.createElement("audio");
    next.controls = true; next.preload = "auto"; next.dataset.job = jobId; next.dataset.final = "1";
    next.src = `/v1/jobs/${jobId}/files/mp3`;
    next.addEventListener("canplaythrough", () => {
      const old = window.vvPlayer();
      if (window.vvLive && old && old.dataset.job !== jobId) return;  // a newer job plays live: it stays
      if (old && old.dataset.job === jobId && !old.ended) {  // same job: go on where the listener is
        next.currentTime = old.currentTime;
        if (!old.paused) next.play().catch(() => {});
      }
      if (old) old.pause();
      stopLive(); next.id = "vv-audio"; box.innerHTML = ""; box.appendChild(next);
      window.vvAudioIdle();  // the finished file plays through <audio>: Web Audio is not needed until the next job
    }, { once: true });
    next.load();
  };
}
"""

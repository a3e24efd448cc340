"""Audible faults where chunks meet: clicks, short bursts, and silences longer than the plan.

The exporter lays chunks on a timeline with planned gaps and fades every chunk in and out, so a
clean join is quiet and smooth. A fault shows up against the local signal, not against a fixed level:

- **click**: the largest sample-to-sample step within ±10 ms of a join, compared with the typical
  large step (99.5th percentile) of the surrounding 150 ms. Speech near a clean join has steps at
  most about as large as its neighbourhood's; an unfaded edge or an inserted click is many times
  larger.
- **burst**: a 1 ms frame near the join far louder than the loudest frames around it (a pop of
  noise rather than a single step).
- **long silence**: a silent run (40 dB under the programme's speech level) longer than the silence
  the layout planned there, by more than ``tolerance`` seconds: a chunk that carries dead air, or an
  engine that stalled.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel

NEAR, CONTEXT = 0.010, 0.050  # seconds around a join: where a fault is looked for, and what it is compared to
STEP_RATIO, MIN_STEP = 200.0, 0.02  # see the module docstring for how these were measured
BURST_RATIO, MIN_BURST = 4.0, 0.01
FLOOR = 1e-4
SILENCE_DB, FRAME = -40.0, 0.010
TOLERANCE = 0.6  # seconds of unplanned silence allowed (Kokoro pads each piece with 40 ms; commas pause)


class Seam(BaseModel):
    kind: Literal["click", "burst", "long_silence"]
    time: float  # seconds into the audio
    value: float  # ratio to the local signal (click, burst) or unplanned seconds (long_silence)
    detail: str


def find_clicks(audio: np.ndarray, joins: list[int], sample_rate: int) -> list[Seam]:
    """Clicks and bursts within ±10 ms of each join (sample positions)."""
    found = []
    near, context = int(NEAR * sample_rate), int(CONTEXT * sample_rate)
    # The second difference is what a click is made of (an impulse or a step); smooth speech has little.
    steps = np.abs(np.diff(audio, 2, prepend=audio[:2]))
    frame = max(1, sample_rate // 1000)
    for join in sorted(set(joins)):
        lo, hi = max(0, join - near), min(audio.size, join + near)
        left, right = slice(max(0, join - context), lo), slice(hi, join + context)
        if hi <= lo or lo - left.start + min(audio.size, right.stop) - hi < near:
            continue
        peak = float(steps[lo:hi].max())
        typical = max(float(np.median(np.r_[steps[left], steps[right]])), FLOOR)
        if peak > MIN_STEP and peak / typical > STEP_RATIO:
            at = (lo + int(steps[lo:hi].argmax())) / sample_rate
            found.append(Seam(kind="click", time=round(at, 3), value=round(peak / typical, 1),
                              detail=f"sample step {peak:.3f}, {peak / typical:.0f}x the local typical step"))
            continue
        burst = _rms(audio[lo:hi], frame).max()
        # Louder than the loud parts on *both* sides: a pop, not the onset of speech.
        sides = [np.percentile(r, 90) for r in (_rms(audio[left], frame), _rms(audio[right], frame)) if r.size]
        ratio = burst / max(max(sides, default=0.0), FLOOR)
        if burst > MIN_BURST and ratio > BURST_RATIO:
            found.append(Seam(kind="burst", time=round(join / sample_rate, 3), value=round(ratio, 1),
                              detail=f"1 ms frame {ratio:.0f}x louder than the speech around it"))
    return found


def find_long_silences(audio: np.ndarray, planned: list[tuple[int, int]], sample_rate: int,
                       tolerance: float = TOLERANCE) -> list[Seam]:
    """Silent runs longer than the planned silence they overlap (``planned``: sample ranges) + tolerance."""
    frame = int(FRAME * sample_rate)
    rms = _rms(audio, frame)
    if not rms.size or not np.any(rms):
        return []
    level = np.percentile(rms[rms > 0], 95) * 10 ** (SILENCE_DB / 20)
    silent = np.r_[False, rms < level, False]
    edges = np.flatnonzero(np.diff(silent.astype(np.int8)))
    found = []
    for start, stop in zip(edges[::2] * frame, edges[1::2] * frame):
        stop = min(stop, audio.size)
        allowed = sum(max(0, min(stop, b) - max(start, a)) for a, b in planned)
        extra = (stop - start - allowed) / sample_rate
        if extra > tolerance:
            found.append(Seam(kind="long_silence", time=round(start / sample_rate, 3), value=round(extra, 2),
                              detail=f"{(stop - start) / sample_rate:.2f} s of silence where "
                                     f"{allowed / sample_rate:.2f} s was planned"))
    return found


def find_seams(audio: np.ndarray, joins: list[int], planned: list[tuple[int, int]], sample_rate: int) -> list[Seam]:
    return sorted(find_clicks(audio, joins, sample_rate) + find_long_silences(audio, planned, sample_rate),
                  key=lambda s: s.time)


def job_joins(job) -> tuple[list[int], list[tuple[int, int]]]:
    """Where a job's chunks (and the lines inside a whole-script chunk) meet on the programme
    timeline, and the silences the layout planned between them, in samples."""
    from ..export import layout

    placed, total = layout(job)
    joins, planned, cursor = [], [], 0
    for chunk, start in placed:
        planned.append((cursor, start))
        joins += [start, start + chunk.samples] + [start + s for _, s, _ in chunk.spans[1:]]
        cursor = start + chunk.samples
    planned.append((cursor, total))
    return joins, planned


def _rms(audio: np.ndarray, frame: int) -> np.ndarray:
    usable = audio[: audio.size // frame * frame].astype(np.float64)
    return np.sqrt(np.mean(usable.reshape(-1, frame) ** 2, axis=1)) if usable.size else usable

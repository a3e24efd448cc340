"""Audible faults where chunks meet: clicks, short bursts, and silences longer than the plan.

The exporter lays chunks on a timeline with planned gaps and fades every chunk in and out, so a
clean join is quiet and smooth. A fault shows up against the local signal, not against a fixed level:

- **click**: the largest second-difference step within ±10 ms of a join, against the typical
  (median) step in the 3 ms before it and the 3 ms after it, whichever is larger. A click is
  isolated; speech is not: a fricative that starts right at a join (Piper does not pad its edges)
  keeps making steps of the same size after its first one. Measured on rendered programmes: clean
  Kokoro and Piper joins score at most 6.5, any point of speech at most ~21; a single-sample click of
  0.02 (−34 dBFS) at a Kokoro join scores over 300. The flag is at 30 (and a step above 0.02).
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

NEAR, CONTEXT, SIDE = 0.010, 0.050, 0.003  # seconds: where a fault is looked for, and what it is compared to
STEP_RATIO, MIN_STEP = 30.0, 0.02  # see the module docstring for how these were measured
BURST_RATIO, MIN_BURST = 4.0, 0.01
FLOOR = 1e-4
SILENCE_DB, FRAME = -40.0, 0.010
# Seconds of unplanned silence allowed: Kokoro's own pauses between sentences of one line measured up to
# 1.2 s in Mandarin (bench/reports/quality), well under 1 s in English.
TOLERANCE = 1.25


class Seam(BaseModel):
    kind: Literal["click", "burst", "long_silence"]
    time: float  # seconds into the audio
    value: float  # ratio to the local signal (click, burst) or unplanned seconds (long_silence)
    detail: str


def find_clicks(audio: np.ndarray, joins: list[int], sample_rate: int, offset: int = 0) -> list[Seam]:
    """Clicks and bursts within ±10 ms of each join (sample positions in ``audio``, which starts
    ``offset`` samples into the programme: times are the programme's)."""
    found = []
    near, context, side = (int(x * sample_rate) for x in (NEAR, CONTEXT, SIDE))
    guard = max(1, side // 6)  # keep the click's own few samples out of its neighbourhood
    # The second difference is what a click is made of (an impulse or a step); smooth speech has little.
    steps = np.abs(np.diff(audio, 2, prepend=audio[:2]))
    frame = max(1, sample_rate // 1000)
    for join in sorted(set(joins)):
        lo, hi = max(side, join - near), min(audio.size - side, join + near)
        if hi <= lo:
            continue
        at = lo + int(steps[lo:hi].argmax())
        peak = float(steps[at])
        typical = max(float(np.median(steps[at - side:at - guard])), float(np.median(steps[at + guard:at + side])), FLOOR)
        if peak > MIN_STEP and peak / typical > STEP_RATIO:
            found.append(Seam(kind="click", time=round((at + offset) / sample_rate, 3), value=round(peak / typical, 1),
                              detail=f"sample step {peak:.3f}, {peak / typical:.0f}x the steps around it"))
            continue
        burst = _rms(audio[lo:hi], frame).max()
        # Louder than the loud parts on *both* sides: a pop, not the onset of speech.
        sides = [np.percentile(r, 90) for r in (_rms(audio[max(0, join - context):lo], frame),
                                                _rms(audio[hi:join + context], frame)) if r.size]
        ratio = burst / max(max(sides, default=0.0), FLOOR)
        if burst > MIN_BURST and ratio > BURST_RATIO:
            found.append(Seam(kind="burst", time=round((join + offset) / sample_rate, 3), value=round(ratio, 1),
                              detail=f"1 ms frame {ratio:.0f}x louder than the speech around it"))
    return found


def find_long_silences(audio: np.ndarray, planned: list[tuple[int, int]], sample_rate: int,
                       tolerance: float = TOLERANCE) -> list[Seam]:
    """Silent runs longer than the planned silence they overlap (``planned``: sample ranges) + tolerance."""
    frame = int(FRAME * sample_rate)
    return _long_silences(_rms(audio, frame), frame, audio.size, planned, sample_rate, tolerance)


def _long_silences(rms: np.ndarray, frame: int, total: int, planned: list[tuple[int, int]], sample_rate: int,
                   tolerance: float) -> list[Seam]:
    if not rms.size or not np.any(rms):
        return []
    level = np.percentile(rms[rms > 0], 95) * 10 ** (SILENCE_DB / 20)
    silent = np.r_[False, rms < level, False]
    edges = np.flatnonzero(np.diff(silent.astype(np.int8)))
    found = []
    for start, stop in zip(edges[::2] * frame, edges[1::2] * frame):
        stop = min(stop, total)
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


def find_seams_streamed(read, total: int, joins: list[int], planned: list[tuple[int, int]],
                        sample_rate: int, block: int = 1 << 20) -> list[Seam]:
    """``find_seams`` on a programme read piece by piece (``read(lo, hi)``), never held whole: each join
    is judged in a window around it, the silences from 10 ms frames measured block by block."""
    pad = int((CONTEXT + NEAR + 2 * SIDE) * sample_rate) + 4
    found = []
    for join in sorted(set(joins)):
        lo, hi = max(0, join - pad), min(total, join + pad)
        found += find_clicks(read(lo, hi), [join - lo], sample_rate, offset=lo)
    frame = int(FRAME * sample_rate)
    step = max(frame, block // frame * frame)
    rms = np.concatenate([_rms(read(lo, min(lo + step, total)), frame) for lo in range(0, total, step)] or [np.zeros(0)])
    found += _long_silences(rms, frame, total, planned, sample_rate, TOLERANCE)
    return sorted(found, key=lambda s: s.time)


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

"""Integrated loudness (ITU-R BS.1770-4, gated) measured block by block, in constant memory.

The same algorithm as ``pyloudnorm.Meter.integrated_loudness`` — K-weighting (its two biquads, run
with their state carried from block to block, so filtering in pieces equals filtering the whole),
400 ms gating blocks every 100 ms, the −70 LUFS absolute gate and the −10 LU relative gate — but fed
in pieces of any size. Only one number per 100 ms is kept (54 000 for 90 minutes), so measuring a
programme never needs the programme in memory. Mono, as every programme here is.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

BLOCK_SECONDS, STEP = 0.400, 0.25  # gating block and its hop as a fraction of it (75 % overlap)
ABSOLUTE_GATE, RELATIVE_GATE = -70.0, -10.0


def _k_weighting(rate: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """The two K-weighting stages (high shelf, then high pass) as pyloudnorm designs them for ``rate``."""
    import pyloudnorm  # imported on use: it pulls in scipy.signal, two seconds the CLI's other commands skip

    meter = pyloudnorm.Meter(rate)
    return [(np.asarray(f.b, np.float64), np.asarray(f.a, np.float64), float(f.passband_gain))
            for f in meter._filters.values()]


class LoudnessMeter:
    """Feed mono audio in pieces (``add``); ``integrated()`` is the gated loudness of all of it."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._stages = [(b, a, g, np.zeros(max(len(a), len(b)) - 1)) for b, a, g in _k_weighting(rate)]
        self._energy: list[float] = []  # sum of squares of each gating block, in order
        self._pending = np.zeros(0)  # filtered samples not yet fully consumed by gating blocks
        self._offset = 0  # the sample index of _pending[0]
        self.samples = 0

    def add(self, audio: np.ndarray) -> None:
        data = np.asarray(audio, np.float64)
        for i, (b, a, gain, state) in enumerate(self._stages):
            filtered, state = lfilter(b, a, data, zi=state)
            data = gain * filtered
            self._stages[i] = (b, a, gain, state)
        self.samples += data.size
        self._pending = np.concatenate([self._pending, np.square(data)])
        self._consume(final=False)

    def _bounds(self, j: int) -> tuple[int, int]:
        # exactly pyloudnorm's integer bounds (its float arithmetic included)
        return (int(BLOCK_SECONDS * (j * STEP) * self.rate), int(BLOCK_SECONDS * (j * STEP + 1) * self.rate))

    def _blocks(self) -> int:
        seconds = self.samples / self.rate
        return int(np.round((seconds - BLOCK_SECONDS) / (BLOCK_SECONDS * STEP))) + 1

    def _consume(self, final: bool) -> None:
        limit = self._blocks() if final else None
        while limit is None or len(self._energy) < limit:
            lo, hi = self._bounds(len(self._energy))
            if not final and hi > self.samples:
                break
            self._energy.append(float(np.sum(self._pending[lo - self._offset:hi - self._offset])))
            next_lo = self._bounds(len(self._energy))[0]
            drop = max(0, min(next_lo - self._offset, self._pending.size))
            self._pending, self._offset = self._pending[drop:], self._offset + drop

    def integrated(self) -> float:
        """Integrated loudness in LUFS (−inf for silence); the meter can be fed on afterwards."""
        saved = (list(self._energy), self._pending, self._offset)
        self._consume(final=True)
        z = np.asarray(self._energy[:max(0, self._blocks())]) / (BLOCK_SECONDS * self.rate)
        self._energy, self._pending, self._offset = saved
        with np.errstate(divide="ignore", invalid="ignore"):
            loudness = -0.691 + 10 * np.log10(z)
            gated = z[loudness >= ABSOLUTE_GATE]
            relative = -0.691 + 10 * np.log10(np.mean(gated)) + RELATIVE_GATE if gated.size else -np.inf
            kept = z[(loudness > relative) & (loudness > ABSOLUTE_GATE)]
            return float(-0.691 + 10 * np.log10(np.mean(kept))) if kept.size else float("-inf")


def integrated_loudness(audio: np.ndarray, rate: int, block: int = 1 << 20) -> float:
    """The gated loudness of ``audio``, measured ``block`` samples at a time."""
    meter = LoudnessMeter(rate)
    for start in range(0, len(audio), block):
        meter.add(audio[start:start + block])
    return meter.integrated()

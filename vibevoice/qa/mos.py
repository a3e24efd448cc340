"""Predicted naturalness (MOS, 1-5) per line with Distill-MOS, a small CNN+transformer distilled
from an XLS-R quality model; its weights are inside the ``distillmos`` wheel.

The score is a proxy: it ranks voices and catches garbled or noisy takes well, but it is not
comparable across languages (it was trained on English ratings). Kokoro's presets score 3.5-4.5 on
English here, espeak-ng ~2.

``distillmos.sqa`` imports torchaudio at the top for its command line only (it loads WAV files with
it); the model itself never calls it. torchaudio pins torch, so it is deliberately not installed:
while the module is imported, and only if torchaudio is really absent, a placeholder module stands in
for it, and is removed again straight after.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import sys
import types

import numpy as np
import soxr

from . import runtime

MOS_RATE = 16_000


@functools.cache
def model():
    with _without_torchaudio(), contextlib.redirect_stdout(io.StringIO()):  # it prints where it loaded from
        import distillmos

        with runtime.torch_threads(1):
            return distillmos.ConvTransformerSQAModel().eval()


def mos(audio: np.ndarray, sample_rate: int) -> float:
    """Distill-MOS of one utterance (float32 mono at any rate)."""
    import torch

    speech = soxr.resample(np.asarray(audio, np.float32), sample_rate, MOS_RATE)
    with runtime.torch_threads(1), torch.no_grad():
        return round(float(model()(torch.from_numpy(speech)[None]).item()), 3)


@contextlib.contextmanager
def _without_torchaudio():
    if importlib.util.find_spec("torchaudio") is not None:
        yield
        return
    sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    try:
        yield
    finally:
        sys.modules.pop("torchaudio", None)

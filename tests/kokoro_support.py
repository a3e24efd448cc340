"""Inputs for the converted Kokoro graph, shared by the tests of its two runtimes."""

from __future__ import annotations

import numpy as np

from vibevoice.engines import kokoro_model
from vibevoice.engines.kokoro import blend_style
from vibevoice.phonemize import Phonemizer
from vibevoice.voices import load_templates


def feed(text: str) -> dict[str, np.ndarray]:
    """The graph's inputs for ``text`` spoken by warm-female at speed 1 (no prosody inputs)."""
    vocab = kokoro_model.vocab()
    ids = [vocab[c] for c in Phonemizer()(text) if c in vocab]
    style = blend_style(load_templates()["warm-female"].spec)
    return {"tokens": np.array([[0, *ids, 0]], np.int64), "style": style[len(ids) - 1].reshape(1, 256),
            "speed": np.array([1.0], np.float32)}

"""Kokoro on OpenVINO (the float graph in bf16): the same controls, the same neutral audio, runtime choice."""

from __future__ import annotations

import functools
import pathlib

import numpy as np
import pytest

from kokoro_support import feed
from vibevoice.engines import kokoro_float, kokoro_model, kokoro_openvino
from vibevoice.engines.kokoro import (
    FRAME_SAMPLES,
    KokoroEngine,
    neutral_arrays,
)
from vibevoice.errors import Unavailable

pytest.importorskip("openvino")

EN = "I never thought we would actually see the ocean from up here."
ZH = "你好，今天天气怎么样？我们一起去公园散步吧。"


@functools.cache
def sessions(tmp: str) -> tuple[kokoro_openvino.OpenVinoSession, kokoro_openvino.OpenVinoSession]:
    """The float graph as converted now, and the same conversion without the prosody pass, on OpenVINO
    as the engine runs it (f32 front, bf16 back)."""
    source = kokoro_model.model_bytes()
    with_controls = kokoro_model.convert(source, "float")
    original = kokoro_model.add_prosody_controls
    kokoro_model.add_prosody_controls = lambda graph: None
    try:
        without = kokoro_model.convert(source, "float")
    finally:
        kokoro_model.add_prosody_controls = original
    return (kokoro_openvino.session_from_graph(with_controls, pathlib.Path(tmp), "bf16", 2),
            kokoro_openvino.session_from_graph(without, pathlib.Path(tmp), "bf16", 2))


@pytest.fixture(scope="module")
def ov_sessions(tmp_path_factory):
    return sessions(str(tmp_path_factory.mktemp("ov")))


def _controls(tokens: int) -> dict[str, np.ndarray]:
    return {k: v.reshape(1, -1) if v.ndim else v.reshape(1) for k, v in neutral_arrays(tokens).items()}


@pytest.mark.parametrize("text", [EN, ZH])
def test_defaults_give_the_float_graph_without_controls(ov_sessions, text):
    shaped, plain = ov_sessions
    inputs = feed(text)
    tokens = inputs["tokens"].shape[1]
    audio, durations = shaped.run(None, {**inputs, **_controls(tokens)})
    (before,) = plain.run(["audio"], inputs)
    again, _ = shaped.run(None, {**inputs, **_controls(tokens)})
    assert np.array_equal(audio, again)  # deterministic run to run
    assert durations.shape == (1, tokens) and durations.sum() * FRAME_SAMPLES == audio.size
    print("max |difference| at the defaults:", np.abs(audio - before).max(), "equal:", np.array_equal(audio, before))
    assert np.array_equal(audio, before)


def test_the_float_conversion_replaces_every_quantised_op():
    import onnx

    graph = onnx.load_from_string(kokoro_model.convert(kokoro_model.model_bytes(), "float"))
    ops = {n.op_type for n in graph.graph.node}
    assert not ops & {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeLSTM"}
    assert {"Conv", "MatMul", "LSTM"} <= ops
    assert {i.name for i in graph.graph.input} >= set(kokoro_model.PROSODY_INPUTS)
    assert "durations" in {o.name for o in graph.graph.output}


def test_the_snake_polynomial_is_sin_squared():
    z = np.linspace(-60, 60, 200_001).astype(np.float32)
    k = np.floor(z / np.pi + 0.5)
    r = (z - k * np.pi).astype(np.float64)
    acc = kokoro_float.SIN_TERMS[-1]
    for term in (*kokoro_float.SIN_TERMS[-2::-1], 1.0):
        acc = acc * r * r + term
    assert np.abs((acc * r) ** 2 - np.sin(z.astype(np.float64)) ** 2).max() < 1e-4


def test_the_runtime_is_chosen_by_setting(monkeypatch):
    monkeypatch.setenv(kokoro_openvino.ENV, "onnxruntime")
    assert KokoroEngine().runtime == "onnxruntime"
    monkeypatch.setenv(kokoro_openvino.ENV, "openvino")
    engine = KokoroEngine()
    assert engine.runtime == "openvino" and engine.version != KokoroEngine(runtime="onnxruntime").version
    monkeypatch.setenv(kokoro_openvino.ENV, "auto")
    assert KokoroEngine().runtime == ("openvino" if kokoro_openvino.bf16_capable() else "onnxruntime")
    monkeypatch.setenv(kokoro_openvino.ENV, "tensorflow")
    with pytest.raises(Unavailable, match="VIBEVOICE_KOKORO_RUNTIME"):
        _ = KokoroEngine().runtime

"""The int8 graph multiplies exactly on this CPU: uint8 weights where the u8 x s8 kernel saturates (AVX2)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from kokoro_support import feed
from vibevoice.engines import kokoro_int8, kokoro_model
from vibevoice.engines.kokoro import neutral_arrays

onnx = pytest.importorskip("onnx")

TEXT = "I never thought we would actually see the ocean from up here."


def test_uint8_weights_multiply_exactly_at_full_scale():
    """The fallback itself: 255 x (+127 / -128) pairs, which overflow an int16 pair sum, come out exact."""
    assert kokoro_int8.products_exact(kokoro_int8.full_scale_weights(signed=False))


def test_the_shipped_probe_is_the_one_the_code_builds():
    """The 1 KB graph read at every start (no ``onnx`` import there) is exactly what ``probe_model`` makes."""
    shipped = onnx.load_from_string(kokoro_int8.shipped_probe())
    assert shipped == onnx.load_from_string(kokoro_int8.probe_model(kokoro_int8.full_scale_weights(signed=True)))


def test_the_weights_this_cpu_gets_multiply_exactly():
    """What the conversion picks here gives exact products (int8 on VNNI/AMX/ARM, uint8 on AVX2 only)."""
    signed = kokoro_int8.signed_weights_exact()
    assert kokoro_int8.products_exact(kokoro_int8.full_scale_weights(signed=signed))
    assert _weight_kinds(kokoro_model.convert(kokoro_model.model_bytes())) == {
        onnx.TensorProto.INT8 if signed else onnx.TensorProto.UINT8}


def _weight_kinds(converted: bytes) -> set[int]:
    """The element types of the constant weights the graph's integer products read (matrices and LSTMs)."""
    graph = onnx.load_from_string(converted).graph
    inits = {t.name: t.data_type for t in graph.initializer}
    slots = {"MatMulInteger": (1, 3), "DynamicQuantizeLSTM": (1, 2, 9, 11)}
    return {inits[n.input[i]] for n in graph.node for i in slots.get(n.op_type, ()) if n.input[i] in inits}


def _audio(graph: bytes) -> np.ndarray:
    session = ort.InferenceSession(graph, kokoro_model.session_options(2), providers=["CPUExecutionProvider"])
    inputs = feed(TEXT)
    arrays = neutral_arrays(inputs["tokens"].shape[1])
    return session.run(None, {**inputs, **{k: v.reshape(1, -1) if v.ndim else v.reshape(1) for k, v in arrays.items()}})[0]


def test_uint8_weights_give_the_same_audio_as_int8():
    """Every weight moved to uint8 (``w + 128``, zero point ``+ 128``) is the same integers: on a CPU that
    multiplies int8 exactly, the two graphs' audio is identical sample for sample."""
    if not kokoro_int8.signed_weights_exact():
        pytest.skip("this CPU's u8 x s8 kernel saturates: its int8 graph is not a reference here")
    source = kokoro_model.model_bytes()
    unsigned = kokoro_model.convert(source, signed=False)
    assert _weight_kinds(unsigned) == {onnx.TensorProto.UINT8}
    assert np.array_equal(_audio(unsigned), _audio(kokoro_model.convert(source, signed=True)))

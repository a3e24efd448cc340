"""Which int8 weights onnxruntime multiplies exactly on this CPU (part of the int8 conversion).

Why
    Kokoro's export multiplies ``uint8`` activations by ``int8`` weights (its 148 MatMulIntegers and
    six LSTMs), and the im2col rewrite (:mod:`kokoro_model`) gives the 87 convolutions ``int8``
    weights too, because that is what VNNI (``vpdpbusd``) and AMX run fastest, exactly.  On an x86
    CPU without VNNI (AVX2 only, e.g. AMD Zen 2/3, Intel before Ice Lake) onnxruntime's u8 x s8
    kernel uses ``vpmaddubsw``, which adds two products into a *saturating* int16: 255 x 127 x 2 does
    not fit, so large activations are clipped.  Measured on an AMD EPYC (Zen 3): the converted graph's
    audio fell to SDR -1.7 dB against the shipped graph (15.4 dB on a VNNI CPU, where the floor is
    1.5 dB) and Whisper heard "Of all the lights, game on one about one" for a plain English
    sentence.  onnxruntime's quantisation guide names the same limit.

What it does
    :func:`signed_weights_exact` asks the runtime rather than the CPU flags: it runs one
    MatMulInteger whose pairs of products overflow int16 (``int8_probe.onnx``, shipped so that the
    check needs no ``onnx``) and compares with numpy's exact sum.  Where
    that fails, :func:`unsigned_weights` moves every int8 weight of the graph to uint8
    (``w + 128`` with the zero point ``+ 128``: the same integers after subtracting it), and the
    rewrite keeps the convolutions' uint8 weights as shipped; onnxruntime's u8 x u8 kernel widens to
    int16 before it multiplies, so nothing saturates.  The graph is then exact everywhere, at the
    cost of the slower u8 x u8 kernel on those CPUs only.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging

import numpy as np

from .kokoro_graph import Rewriter

log = logging.getLogger(__name__)

PROBE_FILE = "int8_probe.onnx"
#: The inputs of DynamicQuantizeLSTM that hold int8 weights and their zero points (W, R, W_zp, R_zp).
_LSTM_WEIGHTS = (1, 2, 9, 11)


def probe_model(weights: np.ndarray) -> bytes:
    """``MatMulInteger(a: uint8 input, weights: constant)``, the way the Kokoro graph calls it."""
    from onnx import TensorProto, helper, numpy_helper

    rows, cols = weights.shape
    zero = np.zeros((), weights.dtype) if weights.dtype == np.int8 else np.full((), 128, np.uint8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "w", "a_zero", "w_zero"], ["y"])],
        "int8_probe",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, None, rows]),
         helper.make_tensor_value_info("a_zero", TensorProto.UINT8, [])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, None, cols])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(zero, "w_zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def products_exact(weights: np.ndarray, model: bytes | None = None) -> bool:
    """True if onnxruntime's MatMulInteger with these constant weights (``model``: their probe, default
    built with ``onnx``) equals the exact integer product for full-scale activations (255, zero point 0),
    the worst case for an int16 pair sum."""
    import onnxruntime as ort

    session = ort.InferenceSession(model or probe_model(weights), providers=["CPUExecutionProvider"])
    a = np.full((1, 16, weights.shape[0]), 255, np.uint8)
    (got,) = session.run(None, {"a": a, "a_zero": np.zeros((), np.uint8)})
    offset = 0 if weights.dtype == np.int8 else 128
    want = a[0].astype(np.int64) @ (weights.astype(np.int64) - offset)
    return bool(np.array_equal(got[0], want))


def full_scale_weights(signed: bool, rows: int = 64, cols: int = 16) -> np.ndarray:
    """Weights at the int8 extremes (+127 and -128 in alternate columns), as int8 or as uint8 + 128."""
    pattern = np.where(np.arange(cols) % 2 == 0, 127, -128)
    values = np.broadcast_to(pattern, (rows, cols))
    return values.astype(np.int8) if signed else (values + 128).astype(np.uint8)


def shipped_probe() -> bytes:
    """``probe_model(full_scale_weights(signed=True))`` as shipped next to this module (1 KB), so the
    check at every start needs onnxruntime only (``import onnx`` alone takes 0.3-0.7 s)."""
    return (importlib.resources.files(__package__) / PROBE_FILE).read_bytes()


@functools.cache
def signed_weights_exact() -> bool:
    """True where onnxruntime multiplies uint8 x int8 exactly on this CPU (VNNI, AMX, ARM); False where
    its kernel saturates (x86 with AVX2 only).  Once per process; True if the probe cannot run."""
    try:
        exact = products_exact(full_scale_weights(signed=True), shipped_probe())
    except Exception as error:  # noqa: BLE001  # a missing file or a runtime without the op: keep the default
        log.warning("int8 probe did not run (%s): Kokoro's int8 graph keeps int8 weights", error)
        return True
    if not exact:
        log.info("this CPU's uint8 x int8 kernel saturates: Kokoro's int8 graph uses uint8 weights")
    return exact


def _as_unsigned(g: Rewriter, name: str) -> str:
    """The uint8 twin of one int8 initializer (``Rewriter.const`` makes it once per name, so weights
    shared by several nodes stay shared)."""

    def shifted() -> np.ndarray:
        array = g.array(name)
        if array.dtype != np.int8:
            raise ValueError(f"{name!r}: expected int8 weights, found {array.dtype}")
        return (array.astype(np.int16) + 128).astype(np.uint8)

    return g.const(f"{name}/u8", shifted)


def unsigned_weights(g: Rewriter) -> int:
    """Every MatMulInteger's and DynamicQuantizeLSTM's constant int8 weights (and zero points) as uint8;
    returns how many nodes changed.  The integer products are unchanged: ``(w + 128) - (z + 128)``."""
    changed = 0
    for node in g.graph.node:
        slots = {"MatMulInteger": (1, 3), "DynamicQuantizeLSTM": _LSTM_WEIGHTS}.get(node.op_type, ())
        slots = [i for i in slots if i < len(node.input) and node.input[i] in g.inits]
        if not slots or g.array(node.input[slots[0]]).dtype != np.int8:
            continue
        for i in slots:
            node.input[i] = _as_unsigned(g, node.input[i])
        changed += 1
    return changed

"""The int8 graph's faster spelling of the decoder's means (kokoro_ops) computes what ReduceMean computes."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from vibevoice.engines import kokoro_model, kokoro_ops
from vibevoice.engines.kokoro_graph import Rewriter

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _run(graph: onnx.GraphProto, x: np.ndarray) -> np.ndarray:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def _graph(node: onnx.NodeProto, shape: list[int], consts: dict[str, np.ndarray]) -> onnx.GraphProto:
    return helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                             [helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None)],
                             [numpy_helper.from_array(v, k) for k, v in consts.items()])


def _rewritten(graph: onnx.GraphProto, rewrite) -> tuple[onnx.GraphProto, int]:
    copy = onnx.GraphProto()
    copy.CopyFrom(graph)
    g = Rewriter(copy)
    done = rewrite(g)
    g.apply()
    return copy, done


def test_the_time_mean_as_a_product_gives_the_same_means():
    mean = helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="/decoder/adain/ReduceMean", keepdims=1)
    graph = _graph(mean, [1, 128, 3001], {"axes": np.array([2], np.int64)})
    fast, done = _rewritten(graph, kokoro_ops.time_means_as_matmul)
    assert done == 1 and "ReduceMean" not in {n.op_type for n in fast.node}
    x = np.random.default_rng(1).standard_normal((1, 128, 3001)).astype(np.float32) + 3.0
    expected, got = _run(graph, x), _run(fast, x)
    assert got.shape == expected.shape == (1, 128, 1)
    assert np.abs(got - expected).max() < 1e-5


def test_the_int8_conversion_uses_them_on_kokoros_graph():
    """The export's pattern is still there: every decoder time mean is rewritten."""
    converted = onnx.load_from_string(kokoro_model.convert(kokoro_model.model_bytes()))
    ops = [(n.op_type, n.name) for n in converted.graph.node]
    assert not [name for op, name in ops if op == "ReduceMean" and name.startswith(kokoro_ops.DECODER)]
    assert sum(op == "MatMul" and name.endswith("/sums") for op, name in ops) == 108

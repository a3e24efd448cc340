"""Kokoro's int8 export back to float ops, for OpenVINO's bf16 (``kokoro_model.convert(precision="float")``).

The export was made by onnxruntime's dynamic quantiser: every Conv, MatMul and LSTM reads
``DynamicQuantizeLinear`` activations and uint8/int8 weights with a zero point and a scale.  Here each
becomes the float op again, with ``(w - zero) * scale`` weights (per tensor or per channel) and the
float bias the quantiser started from, so a runtime with bf16 matrix kernels (OpenVINO on AMX) can
run them; shared weights (the ALBERT layers) stay shared.  The float graph predicts durations a few
frames apart from the int8 one (the int8 graph rounds activations; neither is "the" model).
The snake activations' ``Sin`` becomes a polynomial (:func:`snake_polynomials`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .kokoro_graph import Rewriter, attrs, constant, quantiser_tail

if TYPE_CHECKING:
    import onnx


def _float_source(g: Rewriter, quantised: str) -> str:
    """The float tensor a DynamicQuantizeLinear quantised."""
    dql = g.producer.get(quantised)
    if dql is None or dql.op_type != "DynamicQuantizeLinear":
        raise ValueError(f"{quantised!r}: expected a DynamicQuantizeLinear output")
    return dql.input[0]


def _weight_scale(g: Rewriter, scale_product: str) -> np.ndarray:
    """The weight's scale from the quantiser's ``Mul(x_scale, w_scale)`` (the constant input)."""
    (name,) = [i for i in g.producer[scale_product].input if i in g.inits]
    return g.array(name).astype(np.float32)


def _dequantised(weight: np.ndarray, zero: np.ndarray, scale: np.ndarray, axis: int) -> np.ndarray:
    """``(w - zero) * scale`` in float32, zero and scale per tensor or per channel along ``axis``."""
    shape = [1] * weight.ndim
    shape[axis] = -1
    zero, scale = (np.asarray(a, np.float32).reshape(shape if np.size(a) > 1 else []) for a in (zero, scale))
    return ((weight.astype(np.float32) - zero) * scale).astype(np.float32)


def float_conv(g: Rewriter, conv: onnx.NodeProto) -> None:
    """``DQL -> ConvInteger -> [Add int bias] -> Cast -> Mul`` as one float Conv with its float bias."""
    add, cast, mul = quantiser_tail(g, conv)
    n, (xq, w, _, w_zero) = conv.name, conv.input
    scale = _weight_scale(g, g.other_input(mul, cast.output[0]))
    weights = g.const(f"{w}/float", lambda: _dequantised(g.array(w), g.array(w_zero), scale, 0))
    inputs = [_float_source(g, xq), weights]
    if add:  # Reshape <- Cast <- Floor <- Div(float bias, bias scale): the float bias is that Div's input
        chain = g.producer[g.other_input(add, conv.output[0])]
        while chain.op_type != "Div":
            chain = g.producer[chain.input[0]]
        inputs.append(chain.input[0])
    g.insert[id(mul)] = [g.helper.make_node("Conv", inputs, [mul.output[0]], name=f"{n}/float", **attrs(g, conv))]
    g.drop.update(id(node) for node in (conv, add, cast) if node is not None)


def float_matmul(g: Rewriter, matmul: onnx.NodeProto) -> None:
    """``DQL -> MatMulInteger -> Cast -> Mul(scales)`` as one float MatMul (the bias Add stays)."""
    xq, w, _, w_zero = matmul.input
    cast = g.only_consumer(matmul.output[0], "Cast")
    mul = g.only_consumer(cast.output[0], "Mul")
    scale = _weight_scale(g, g.other_input(mul, cast.output[0]))
    weights = g.const(f"{w}/float", lambda: _dequantised(g.array(w), g.array(w_zero), scale, 1))
    g.insert[id(mul)] = [g.node("MatMul", [_float_source(g, xq), weights], mul.output[0])]
    g.drop.update({id(matmul), id(cast)})


def float_lstm(g: Rewriter, lstm: onnx.NodeProto) -> None:
    """com.microsoft DynamicQuantizeLSTM as an ONNX LSTM: weights dequantised per direction and
    transposed from its [dirs, in, 4H] to LSTM's [dirs, 4H, in] (same gate order, iofc)."""
    x, w, r, *rest = lstm.input
    b, lens, h0, c0, peep, w_scale, w_zero, r_scale, r_zero = (rest + [""] * 9)[:9]
    n = lstm.name
    w_f = _dequantised(g.array(w), g.array(w_zero), g.array(w_scale), 0).transpose(0, 2, 1)
    r_f = _dequantised(g.array(r), g.array(r_zero), g.array(r_scale), 0).transpose(0, 2, 1)
    inputs = [x, g.const(f"{n}/W_f", np.ascontiguousarray(w_f)), g.const(f"{n}/R_f", np.ascontiguousarray(r_f)),
              b, lens, h0, c0, peep]
    while inputs and not inputs[-1]:
        inputs.pop()
    g.insert[id(lstm)] = [g.helper.make_node("LSTM", inputs, list(lstm.output), name=f"{n}/float",
                                             **attrs(g, lstm))]


#: sin z on [-pi/2, pi/2] as z * (1 + z^2 (c3 + z^2 (c5 + ...))): Taylor terms to z^11, error < 6e-8.
SIN_TERMS = tuple(float((-1) ** k / np.prod(np.arange(2, 2 * k + 2))) for k in range(1, 6))


def snake_polynomials(g: Rewriter) -> None:
    """The vocoder's snake activations' ``Pow(Sin(a x), 2)`` as plain Mul/Add/Floor ops.

    OpenVINO runs ``Sin`` on a scalar reference kernel (24 % of a bf16 run); a polynomial of
    element-wise ops is vectorised and fused with the Mul and Add around it.  sin^2 has period pi, so
    ``z = y - pi * floor(y / pi + 1/2)`` lies in [-pi/2, pi/2] and an odd Taylor polynomial there is
    within 6e-8 of sin z.  Only for the float graph: onnxruntime's Sin is vectorised already.
    """
    c = {k: g.const(f"/snake/{k}", np.array(v, np.float32)) for k, v in {
        "inv_pi": 1 / np.pi, "pi": np.pi, "half": 0.5, "one": 1.0,
        **{f"c{2 * i + 3}": t for i, t in enumerate(SIN_TERMS)}}.items()}
    for sin in [n for n in g.graph.node if n.op_type == "Sin"]:
        users = g.consumers.get(sin.output[0], [])
        if len(users) != 1 or users[0].op_type != "Pow" or constant(g, users[0].input[1]) != 2:
            continue  # the harmonic source's sines are few and small
        n, y = sin.name, sin.input[0]
        nodes = [g.node("Mul", [y, c["inv_pi"]], f"{n}/turns"), g.node("Add", [f"{n}/turns", c["half"]], f"{n}/shifted"),
                 g.node("Floor", [f"{n}/shifted"], f"{n}/k"), g.node("Mul", [f"{n}/k", c["pi"]], f"{n}/kpi"),
                 g.node("Sub", [y, f"{n}/kpi"], f"{n}/z"), g.node("Mul", [f"{n}/z", f"{n}/z"], f"{n}/z2")]
        acc = c["c11"]
        for term in ("c9", "c7", "c5", "c3", "one"):
            nodes += [g.node("Mul", [acc, f"{n}/z2"], f"{n}/{term}_m"), g.node("Add", [f"{n}/{term}_m", c[term]], f"{n}/{term}_a")]
            acc = f"{n}/{term}_a"
        nodes += [g.node("Mul", [acc, f"{n}/z"], f"{n}/sin"),
                  g.node("Mul", [f"{n}/sin", f"{n}/sin"], users[0].output[0])]
        g.insert[id(users[0])] = nodes
        g.drop.add(id(sin))


# -- bf16 where it is safe: the harmonic source and the predictor stay f32 -----------------------------

#: The vocoder's harmonic source (sines of the accumulated F0 phase), [1, samples, 1].
SOURCE = "/decoder/decoder/generator/m_source/l_tanh/Tanh_output_0"


def split_for_bf16(graph: bytes) -> list[tuple[bytes, str]]:
    """The float graph as parts to run in order, each with its precision: text encoder, predictor and
    harmonic source in f32, the rest of the decoder in bf16.  Parts meet in named tensors (six);
    Constant nodes are copied into every part that reads them.  (Running the inverse STFT after
    ``conv_post`` in f32 too, as a third part, gave the same MOS, 4.27: it was not the loss.)

    Why: the source's phase is a running sum of F0 over the whole line (thousands of radians); stored
    in bf16 (8 significant bits) its sines are noise, and OpenVINO's bf16 mode has no per-node f32
    switch that holds (its ``disable_fp16_compression`` mark changed nothing).  Measured Distill-MOS
    on a passage sentence: whole graph in bf16 1.36, int8 onnxruntime 4.56 (README for the rest).
    """
    import onnx

    proto = onnx.load_from_string(graph)
    g = proto.graph
    nodes = list(g.node)  # one wrapper per node, kept alive: the split goes by id()
    back = _decoder_nodes(nodes)
    groups = [([n for n in nodes if id(n) not in back], "f32"), ([n for n in nodes if id(n) in back], "bf16")]
    consts = {o: n for n in nodes if n.op_type == "Constant" for o in n.output}
    typed = {v.name: v for v in [*onnx.shape_inference.infer_shapes(proto).graph.value_info, *g.input, *g.output]}
    outputs = {o.name for o in g.output}
    parts = []
    for i, (members, precision) in enumerate(groups):
        own = {o for n in members for o in n.output}
        reads = {x for n in members for x in n.input if x} - own
        later = {x for m, _ in groups[i + 1:] for n in m for x in n.input}
        copied = [consts[x] for x in sorted(reads & set(consts))]
        inputs = sorted(reads - set(consts) - {t.name for t in g.initializer})
        sends = sorted((own & later) - set(consts) | (own & outputs))
        parts.append((_subgraph(proto, copied + members, [typed[x] for x in inputs], [typed[x] for x in sends]),
                      precision))
    return parts


def _decoder_nodes(nodes: list[onnx.NodeProto]) -> set[int]:
    """ids of the decoder's nodes that do not lead to the harmonic source, and everything after them."""
    producer = {o: n for n in nodes for o in n.output}
    source, stack = set(), [SOURCE]
    while stack:
        node = producer.get(stack.pop())
        if node is not None and id(node) not in source:
            source.add(id(node))
            stack.extend(node.input)
    back, late = set(), set()
    for node in nodes:  # topological order: a consumer of a back tensor is back
        if (node.name.startswith("/decoder/") and id(node) not in source) or late.intersection(node.input):
            back.add(id(node))
            late.update(node.output)
    return back


def _subgraph(proto: onnx.ModelProto, nodes: list, inputs: list, outputs: list) -> bytes:
    import onnx

    used = {i for n in nodes for i in n.input}
    graph = onnx.helper.make_graph(nodes, "kokoro", inputs, outputs,
                                   [t for t in proto.graph.initializer if t.name in used])
    model = onnx.helper.make_model(graph, opset_imports=proto.opset_import, ir_version=proto.ir_version)
    return model.SerializeToString()

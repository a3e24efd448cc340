"""Kokoro's decoder means spelled the way onnxruntime runs them fast (part of the int8 conversion).

Why
    A profile of the converted int8 graph (4 passage sentences, 2 threads, AMD EPYC) put 12 % of the
    kernel time in the decoder's instance norms' ``ReduceMean``:

    - The im2col rewrite (:mod:`kokoro_model`) leaves the decoder time-major; onnxruntime's transpose
      optimiser moves the instance norms with it, so their means reduce ``[1, T, C]`` over T, the
      non-contiguous axis, which its ``ReduceMean`` does 3-14x slower than the shipped graph's
      ``[1, C, T]`` (6.6-7.2 ms against 0.5-2.4 ms per node on a 39 001-frame line).  A sum over T is a
      matrix product with a row of ones, which MLAS's SGEMM does at memory speed.
      :func:`time_means_as_matmul` writes it so: ``ones[1, T] @ transpose(x)``, the transpose being the
      inverse of the one the optimiser brings, so the two cancel and the product reads the time-major
      tensor in place.
    - Tried and left out: the harmonic source's ``STFT`` (5 %) as a strided convolution with a
      windowed DFT basis.  Its bins equal the STFT's to ~2e-6 of the largest and it ran 4 % faster,
      but Distill-MOS fell 0.2-0.4 on passage sentences.  One difference measured: the DC bin's
      imaginary part is rounding noise in onnxruntime's STFT (so its phase is ±π at random where the
      real part is negative) and exactly ±0 in the convolution; whether that is what the vocoder
      hears is not settled.

It changes float summation order only; the decoder is chaotic at that level (see
:mod:`kokoro_model`: a 1e-6 change of the style vector moves the waveform as much), so the change is
measured as the whole conversion is, with the quality bench (README, "Kokoro runtime").
"""

from __future__ import annotations

import numpy as np

from .kokoro_graph import Rewriter, constant

DECODER = "/decoder/"


def time_means_as_matmul(g: Rewriter) -> int:
    """Every decoder ``ReduceMean`` over the last axis of a 3-D tensor, as a product with ones; returns
    how many were rewritten."""
    done = 0
    for node in list(g.graph.node):
        if node.op_type != "ReduceMean" or not node.name.startswith(DECODER) or len(node.input) != 2:
            continue
        axes = constant(g, node.input[1])
        if axes is None or np.atleast_1d(axes).tolist() not in ([2], [-1]):
            continue
        n, x = node.name, node.input[0]
        one = g.const("time_means/one", np.array([1], np.int64))
        g.insert[id(node)] = [
            g.node("Shape", [x], f"{n}/frames", start=2, end=3),
            g.node("Concat", [one, f"{n}/frames"], f"{n}/row_shape", axis=0),
            g.helper.make_node("ConstantOfShape", [f"{n}/row_shape"], [f"{n}/ones"], name=f"{n}/ones",
                               value=g.numpy_helper.from_array(np.ones(1, np.float32))),
            g.node("Transpose", [x], f"{n}/time_major", perm=[0, 2, 1]),
            g.node("MatMul", [f"{n}/ones", f"{n}/time_major"], f"{n}/sums"),  # [1, 1, C]
            g.node("Cast", [f"{n}/frames"], f"{n}/count", to=1),
            g.node("Div", [f"{n}/sums", f"{n}/count"], f"{n}/means"),
            g.node("Transpose", [f"{n}/means"], node.output[0], perm=[0, 2, 1]),  # [1, C, 1], as before
        ]
        done += 1
    return done

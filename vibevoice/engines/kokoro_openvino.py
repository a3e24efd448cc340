"""Kokoro on OpenVINO: the float conversion of :mod:`kokoro_model`, with the decoder in bf16 on AMX.

Why a second runtime
    onnxruntime's best CPU path for the shipped int8 export is u8 x s8 MatMulInteger on VNNI
    (``kokoro_model.convert(precision="int8")``); the element-wise ops around it (snake
    activations, instance norms) are then most of the run.  On CPUs with AMX / AVX512-bf16,
    OpenVINO runs the dequantised float graph (``convert(precision="float")``) with bf16 matrix
    kernels and fuses element-wise chains.  Without bf16 hardware it would run that graph in f32,
    slower than the int8 path, so ``auto`` picks onnxruntime there.

Why two parts
    The whole graph in bf16 sounds broken (Distill-MOS 1.36 vs 4.56 int8 on a passage sentence):
    the vocoder's harmonic source takes sines of a phase summed over the whole line, which bf16
    cannot hold.  OpenVINO's per-node "keep f32" mark (``disable_fp16_compression``) changed nothing
    in bf16 mode, so :func:`kokoro_float.split_for_bf16` cuts the graph: text encoder, predictor and
    harmonic source run in f32, the decoder in bf16 (MOS 4.27 on that sentence); the two meet in
    six tensors.  Durations are then the float predictor's (a few frames from the int8 graph's).

Which runtime runs
    ``VIBEVOICE_KOKORO_RUNTIME`` = ``onnxruntime`` | ``openvino`` | ``auto`` (see
    :func:`choose_runtime`); the default stays ``onnxruntime`` (README, "Kokoro runtime": the bf16
    decoder still scores below int8).  :func:`load_session` returns an object with the two methods
    the engine uses of an onnxruntime session (``get_inputs``, ``run``).

Caching
    The float graph and its two parts are written once under ``cache_dir`` (keyed by the model's
    sha256 and ``CONVERTER_VERSION``, like the int8 one) and OpenVINO's compiled blobs go to
    ``cache_dir/openvino`` through its ``CACHE_DIR`` property: a cold load (convert, split, compile)
    took ~26 s under load, a cached one ~2.7 s; peak RSS ~1.2 GiB vs ~0.37 GiB for onnxruntime int8.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pathlib
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import Unavailable
from . import kokoro_float, kokoro_model

log = logging.getLogger(__name__)

RUNTIMES = ("onnxruntime", "openvino", "auto")
DEFAULT_RUNTIME = "onnxruntime"
ENV = "VIBEVOICE_KOKORO_RUNTIME"


def bf16_capable() -> bool:
    """True if OpenVINO is installed and this CPU has bf16 matrix hardware (AMX or AVX512-bf16)."""
    try:
        import openvino as ov
    except ImportError:
        return False
    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return False
    try:  # OpenVINO also lists BF16 where it would only emulate it; the flags say what is fast
        flags = pathlib.Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").split()
    except OSError:
        return True
    return "amx_bf16" in flags or "avx512_bf16" in flags


def choose_runtime(requested: str | None = None) -> str:
    """``onnxruntime`` or ``openvino``: the request (else ``VIBEVOICE_KOKORO_RUNTIME``, else the
    default); ``auto`` means OpenVINO where :func:`bf16_capable`, onnxruntime elsewhere."""
    name = (requested or os.environ.get(ENV) or DEFAULT_RUNTIME).strip().lower()
    if name not in RUNTIMES:
        raise Unavailable(f"{ENV}={name!r} is not one of {', '.join(RUNTIMES)}")
    if name == "auto":
        return "openvino" if bf16_capable() else "onnxruntime"
    if name == "openvino" and not _has_openvino():
        raise Unavailable("the Kokoro runtime 'openvino' needs the openvino package: pip install openvino==2026.4.1")
    return name


def _has_openvino() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class _Input:
    name: str


class OpenVinoSession:
    """Compiled Kokoro graph parts behind onnxruntime's ``get_inputs()`` / ``run(None, feed)``.

    ``parts`` run in order, each reading the feed and the tensors the earlier parts produced (the
    f32 front and the bf16 back of :func:`kokoro_float.split_for_bf16`, or one whole graph); the
    outputs are ``audio`` and ``durations``.  One infer request per part, used under a lock: the
    engine speaks one piece at a time; with ``per_thread`` (the lanes' session, compiled with one
    stream per lane, ``load_session(lanes=N)``) each calling thread gets its own requests instead.
    """

    runtime = "openvino"

    def __init__(self, parts: list[Any], precision: str, per_thread: bool = False) -> None:
        self.precision = precision
        self._local = threading.local() if per_thread else None
        self._parts = [(compiled, compiled.create_infer_request()) for compiled in parts]
        produced = {name for compiled in parts for port in compiled.outputs for name in port.get_names()}
        names = [port.any_name for compiled in parts for port in compiled.inputs]
        self._inputs = [_Input(name) for name in dict.fromkeys(names) if name not in produced]
        self._lock = threading.Lock()

    def get_inputs(self) -> list[_Input]:
        return list(self._inputs)

    def run(self, output_names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self._local is None:
            with self._lock:
                return self._run(self._parts, output_names, feed)
        if not hasattr(self._local, "parts"):
            self._local.parts = [(compiled, compiled.create_infer_request()) for compiled, _ in self._parts]
        return self._run(self._local.parts, output_names, feed)

    @staticmethod
    def _run(parts: list[tuple[Any, Any]], output_names: list[str] | None,
             feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        tensors = dict(feed)
        for compiled, request in parts:  # a port may carry several names; any one is the ONNX one
            results = request.infer({p.any_name: next(tensors[n] for n in p.get_names() if n in tensors)
                                     for p in compiled.inputs})
            tensors.update({n: np.array(results[p]) for p in compiled.outputs for n in p.get_names()})
        return [tensors[name] for name in (output_names or ["audio", "durations"])]


def compile_options(precision: str, threads: int | None, cache_dir: pathlib.Path | None,
                    lanes: int = 0) -> dict[str, Any]:
    """Latency mode on ``threads`` cores, ``precision`` (bf16 | f32) for matrix ops, compiled-blob cache;
    with ``lanes``, one single-thread stream per lane instead (requests of several threads overlap)."""
    options: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
    if lanes:
        options.update(PERFORMANCE_HINT="THROUGHPUT", NUM_STREAMS=int(lanes), INFERENCE_NUM_THREADS=int(lanes))
    elif threads:
        options["INFERENCE_NUM_THREADS"] = int(threads)
    if cache_dir:
        options["CACHE_DIR"] = str(pathlib.Path(cache_dir) / "openvino")
    return options


def graph_files(cache_dir: pathlib.Path, precision: str) -> list[tuple[pathlib.Path | None, str]]:
    """(ONNX file, precision to compile it in) for each part: bf16 = the parts of
    :func:`kokoro_float.split_for_bf16` (converted, split and cached on first use), f32 = the whole
    float graph."""
    if precision == "f32":
        return [(kokoro_model.graph_path(cache_dir, "float"), "f32")]
    parts: list[tuple[bytes, str]] = []

    def part(index: int) -> bytes:
        if not parts:
            parts.extend(kokoro_float.split_for_bf16(kokoro_model.fast_model_bytes(cache_dir, "float")))
        return parts[index][0]

    precisions = ("f32", "bf16")  # as split_for_bf16 makes them
    return [(kokoro_model.graph_path(cache_dir, f"float-part{i}", functools.partial(part, i)), p)
            for i, p in enumerate(precisions)]


def load_session(cache_dir: pathlib.Path | None, threads: int | None = None,
                 precision: str = "bf16", lanes: int = 0) -> OpenVinoSession:
    """The float Kokoro graph compiled by OpenVINO for the CPU (converted and cached on first use;
    without ``cache_dir``, in a temporary one: OpenVINO reads ONNX from files). With ``lanes``: one
    single-thread stream per lane, each calling thread with its own requests (``kokoro_lanes``)."""
    import openvino as ov

    core = ov.Core()
    with tempfile.TemporaryDirectory(prefix="kokoro-ov-") as tmp:
        files = graph_files(pathlib.Path(cache_dir or tmp), precision)
        if any(path is None for path, _ in files):
            raise Unavailable(f"could not write Kokoro's float graph under {cache_dir or tmp}")
        # Paths, not read models: with a compiled blob in CACHE_DIR the ONNX is then not parsed.
        parts = [core.compile_model(str(path), "CPU", compile_options(p, threads, cache_dir, lanes))
                 for path, p in files]
    log.info("Kokoro runs on OpenVINO %s (%s, %s)", ov.get_version(), precision,
             f"{lanes} single-thread lanes" if lanes else f"{threads or 'all'} threads")
    return OpenVinoSession(parts, precision, per_thread=bool(lanes))


def session_from_graph(graph: bytes, workdir: pathlib.Path, precision: str = "bf16",
                       threads: int | None = None, lanes: int = 0) -> OpenVinoSession:
    """A float graph given as bytes (tests, benches), split and compiled as :func:`load_session` does."""
    import openvino as ov

    parts = [(graph, "f32")] if precision == "f32" else kokoro_float.split_for_bf16(graph)
    core, compiled = ov.Core(), []
    for i, (blob, part_precision) in enumerate(parts):
        path = pathlib.Path(workdir) / f"part{i}-{hashlib.sha256(blob).hexdigest()[:12]}.onnx"
        path.write_bytes(blob)
        compiled.append(core.compile_model(str(path), "CPU", compile_options(part_precision, threads, None, lanes)))
    return OpenVinoSession(compiled, precision, per_thread=bool(lanes))

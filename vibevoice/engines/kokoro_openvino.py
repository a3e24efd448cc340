"""Kokoro on OpenVINO in bf16: the float conversion of :mod:`kokoro_model`, run on AMX.

Why a second runtime
    onnxruntime's best CPU path for the shipped int8 export is u8 x s8 MatMulInteger on VNNI
    (``kokoro_model.convert(precision="int8")``); the element-wise ops around it (snake
    activations, instance norms) are then most of the run.  On CPUs with AMX / AVX512-bf16,
    OpenVINO runs the dequantised float graph (``convert(precision="float")``) with bf16 matrix
    kernels (brgemm/brgconv AMX) and fuses the element-wise chains, including the snake
    activations once their ``Sin`` is a polynomial.  Without bf16 hardware OpenVINO would run
    that graph in f32, slower than the int8 path, so ``auto`` picks onnxruntime there.

Which runtime runs
    ``VIBEVOICE_KOKORO_RUNTIME`` = ``onnxruntime`` | ``openvino`` | ``auto`` (see
    :func:`choose_runtime`); the default is ``onnxruntime`` (see README, "Kokoro runtime", for
    the quality figures behind that choice).  :func:`load_session` returns an object with the two
    methods the engine uses of an onnxruntime session (``get_inputs``, ``run``), so the engine does
    not care which it got.

Caching
    The float graph is written once under ``cache_dir`` (keyed by the model's sha256 and
    ``CONVERTER_VERSION``, like the int8 one) and OpenVINO's compiled blob goes to
    ``cache_dir/openvino`` through its ``CACHE_DIR`` property, so later loads skip both steps.
"""

from __future__ import annotations

import logging
import os
import pathlib
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import Unavailable
from . import kokoro_model

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
    """A compiled Kokoro graph behind onnxruntime's ``get_inputs()`` / ``run(None, feed)``.

    One infer request, used under a lock: the engine speaks one piece at a time, and a second
    request would only split the same two cores.
    """

    runtime = "openvino"

    def __init__(self, compiled: Any, precision: str) -> None:
        self.precision = precision
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._inputs = [_Input(port.any_name) for port in compiled.inputs]
        self._lock = threading.Lock()

    def get_inputs(self) -> list[_Input]:
        return list(self._inputs)

    def run(self, output_names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            results = self._request.infer(feed)
            outputs = [np.array(results[port]) for port in self._compiled.outputs]
        if output_names is None:
            return outputs
        names = [port.any_name for port in self._compiled.outputs]
        return [outputs[names.index(name)] for name in output_names]


def compile_options(precision: str, threads: int | None, cache_dir: pathlib.Path | None) -> dict[str, Any]:
    """Latency mode on ``threads`` cores, ``precision`` (bf16 | f32) for matrix ops, compiled-blob cache."""
    options: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
    if threads:
        options["INFERENCE_NUM_THREADS"] = int(threads)
    if cache_dir:
        options["CACHE_DIR"] = str(pathlib.Path(cache_dir) / "openvino")
    return options


def load_session(cache_dir: pathlib.Path | None, threads: int | None = None,
                 precision: str = "bf16") -> OpenVinoSession:
    """The float Kokoro graph compiled by OpenVINO for the CPU (converted and cached on first use)."""
    import openvino as ov

    core = ov.Core()
    with tempfile.TemporaryDirectory(prefix="kokoro-ov-") as tmp:
        path = kokoro_model.graph_path(cache_dir, "float") if cache_dir else None
        if path is None:  # no cache: OpenVINO reads ONNX from a file, so a temporary one
            path = pathlib.Path(tmp) / "kokoro-float.onnx"
            path.write_bytes(kokoro_model.fast_model_bytes(None, "float"))
        # A path, not a read model: with a compiled blob in CACHE_DIR the ONNX is then not parsed.
        compiled = core.compile_model(str(path), "CPU", compile_options(precision, threads, cache_dir))
    log.info("Kokoro runs on OpenVINO %s (%s, %s threads)", ov.get_version(), precision, threads or "all")
    return OpenVinoSession(compiled, precision)

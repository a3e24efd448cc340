"""Finding, checking and loading a local VibeVoice checkpoint; choosing device, dtype and attention.

A checkpoint is a directory in transformers' converted layout (``config.json`` with
``model_type: vibevoice``, ``generation_config.json``, safetensors shards, tokenizer files,
``processor_config.json``, ``chat_template.jinja``). Everything is checked *before* the weights are
loaded, because the failure modes are quiet: a directory in Microsoft's original layout parses into a
wrong model without an error, and a missing shard or a config from another size loads random weights
where real ones should be. Each check says what it found and what to do.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ...errors import BadInput

log = logging.getLogger(__name__)

ENV_MODEL_DIR = "VIBEVOICE_MODEL_DIR"
# What a user with a checkpoint in Microsoft's original layout can do. transformers' conversion script
# (convert_vibevoice_to_hf.py, in its source tree, not in the wheel) takes a Hub model id and downloads
# the original weights itself, so it cannot convert a local or fine-tuned directory offline.
CONVERT_HINT = (
    "This engine loads only checkpoints in transformers' converted layout. Download a converted one on a machine "
    "with internet (e.g. `hf download vibevoice/VibeVoice-1.5B-hf --local-dir DIR`) and copy DIR here. Converting "
    "needs internet too: transformers' convert_vibevoice_to_hf.py (in the transformers v5.23.0 source tree, not in "
    "the pip wheel) takes a Hub model id (--checkpoint microsoft/VibeVoice-1.5B --output_dir DIR, or "
    "aoi-ot/VibeVoice-Large) and downloads the original weights itself, so it cannot convert a local or fine-tuned "
    "original directory offline: upload that to a (private) Hub repository, convert it on a machine with internet "
    "and copy the output directory here."
)
# Keys only the original (pre-conversion) layout has, in config.json and in the weights.
_ORIGINAL_CONFIG_KEYS = {"decoder_config", "acoustic_tokenizer_config", "semantic_tokenizer_config", "acoustic_vae_dim"}
_ORIGINAL_WEIGHT_MARKS = ("acoustic_tokenizer.", "semantic_tokenizer.", "prediction_head.", "speech_scaling_factor")
KNOWN_SIZES = {1536: "VibeVoice-1.5B", 3584: "VibeVoice-Large"}  # by the LM's hidden size


class CheckpointError(BadInput):
    """The directory is not a usable converted VibeVoice checkpoint; the message says why and what to do."""


@dataclass(frozen=True)
class Checkpoint:
    """A checked checkpoint directory (nothing loaded yet)."""

    path: Path
    config: object  # VibeVoiceConfig
    weight_files: tuple[Path, ...]
    weight_bytes: int
    parameters: int
    weights_dtype: str

    @property
    def name(self) -> str:
        return KNOWN_SIZES.get(self.config.text_config.hidden_size, f"custom VibeVoice ({self.parameters / 1e9:.2f} B)")

    @property
    def max_positions(self) -> int:
        return int(self.config.text_config.max_position_embeddings)

    def identity(self) -> dict:
        """What identifies these weights in a saved render state (config + weight file sizes)."""
        files = {p.name: p.stat().st_size for p in self.weight_files}
        return {"config": (self.path / "config.json").read_text("utf-8"), "weights": files}


def resolve_model_dir(model_dir: str | Path | None) -> Path:
    """The explicit directory, else ``$VIBEVOICE_MODEL_DIR``; a clear error when neither is set."""
    chosen = model_dir or os.environ.get(ENV_MODEL_DIR)
    if not chosen:
        raise CheckpointError(
            f"no VibeVoice checkpoint directory given: pass --model-dir DIR (or the page's model field) or set "
            f"{ENV_MODEL_DIR}. The directory must hold a converted checkpoint (config.json, generation_config.json, "
            "*.safetensors, tokenizer files, chat_template.jinja).")
    return Path(chosen).expanduser()


def inspect_checkpoint(model_dir: str | Path | None) -> Checkpoint:
    """Check a checkpoint directory without loading weights; raise ``CheckpointError`` on any problem."""
    from transformers import VibeVoiceConfig

    path = resolve_model_dir(model_dir)
    if not path.is_dir():
        raise CheckpointError(f"model directory {path} does not exist (or is not a directory)")
    present = sorted(p.name for p in path.iterdir())  # never shown: an error names what is missing, not what is there
    if "config.json" not in present:
        raise CheckpointError(f"{path} has no config.json; it is not a transformers checkpoint")
    try:
        raw = json.loads((path / "config.json").read_text("utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path / 'config.json'} is not valid JSON ({err})") from err
    if _ORIGINAL_CONFIG_KEYS & raw.keys() or (path / "preprocessor_config.json").exists() and "text_config" not in raw:
        raise CheckpointError(
            f"{path} is in Microsoft's original VibeVoice layout (config.json has "
            f"{', '.join(sorted(_ORIGINAL_CONFIG_KEYS & raw.keys())) or 'no text_config'}), which transformers "
            f"would load into a wrong model. {CONVERT_HINT}")
    model_type = raw.get("model_type")
    if model_type != "vibevoice":
        extra = (" (VibeVoice-Realtime-0.5B is not supported by transformers 5.23.0)"
                 if model_type == "vibevoice_streaming" else "")
        raise CheckpointError(f"{path / 'config.json'} has model_type {model_type!r}, expected 'vibevoice'{extra}")
    missing = [name for name in ("generation_config.json", "processor_config.json", "tokenizer_config.json")
               if name not in present]
    if "tokenizer.json" not in present and not {"vocab.json", "merges.txt"} <= set(present):
        missing.append("tokenizer.json (or vocab.json + merges.txt)")
    if "chat_template.jinja" not in present and not _has_embedded_template(path):
        missing.append("chat_template.jinja")
    weights = _weight_files(path, present)
    if missing:
        raise CheckpointError(
            f"{path} is missing {', '.join(missing)}. Copy the complete converted checkpoint; "
            f"{CONVERT_HINT}")
    try:
        config = VibeVoiceConfig.from_pretrained(path)
    except Exception as err:  # strict config validation errors come in several types
        raise CheckpointError(f"{path / 'config.json'} does not describe a valid VibeVoice model: {err}") from err
    parameters, dtype = _check_weights(path, config, weights)
    return Checkpoint(path, config, tuple(weights), sum(p.stat().st_size for p in weights), parameters, dtype)


def _has_embedded_template(path: Path) -> bool:
    for name in ("processor_config.json", "tokenizer_config.json"):
        try:
            if "chat_template" in json.loads((path / name).read_text("utf-8")):
                return True
        except (OSError, json.JSONDecodeError):
            pass
    return False


def _weight_files(path: Path, present: list[str]) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text("utf-8"))["weight_map"].values()))
        absent = [s for s in shards if not (path / s).exists()]
        if absent:
            raise CheckpointError(f"{path} lacks {len(absent)} weight shard(s) named in model.safetensors.index.json: "
                                  f"{', '.join(absent[:4])}; the download is incomplete")
        return [path / s for s in shards]
    files = [path / name for name in present if name.endswith(".safetensors")]
    if not files:
        bins = [name for name in present if name.endswith((".bin", ".pt", ".pth"))]
        hint = f" (found {', '.join(bins)}: only safetensors are loaded)" if bins else ""
        raise CheckpointError(f"{path} has no *.safetensors weights{hint}. {CONVERT_HINT}")
    return sorted(files)


def _check_weights(path: Path, config, files: list[Path]) -> tuple[int, str]:
    """Compare tensor names and shapes in the safetensors headers with the model the config describes."""
    from safetensors import safe_open
    from transformers import VibeVoiceForConditionalGeneration

    found: dict[str, tuple[int, ...]] = {}
    dtypes: set[str] = set()
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():
                    piece = handle.get_slice(key)
                    found[key] = tuple(piece.get_shape())
                    dtypes.add(piece.get_dtype())
        except Exception as err:
            raise CheckpointError(f"weight file {file} is unreadable or truncated ({err}); download it again") from err
    if any(mark in key for key in found for mark in _ORIGINAL_WEIGHT_MARKS):
        raise CheckpointError(f"the weights in {path} use the original VibeVoice names (e.g. acoustic_tokenizer.*, "
                              f"prediction_head.*). {CONVERT_HINT}")
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in VibeVoiceForConditionalGeneration(config).state_dict().items()}
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    missing = sorted(set(expected) - set(found) - tied)
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensor(s) missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with the wrong shape (e.g. {k}: config wants {expected[k]}, file has {found[k]})")
        raise CheckpointError(
            f"the weights in {path} do not match its config.json: {'; '.join(parts)}. The config and the weights come "
            "from different models or the conversion went wrong; re-download or re-convert the checkpoint.")
    parameters = sum(_numel(shape) for key, shape in expected.items() if key not in tied or key in found)
    return parameters, "/".join(sorted(dtypes))


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


# ------------------------------------------------------------------------------------------------------
# Device, dtype, attention


def choose_device(requested: str | None = None) -> torch.device:
    """CUDA, then Apple MPS, then CPU, unless ``requested`` (``cuda``, ``cuda:1``, ``mps``, ``cpu``)."""
    if requested:
        try:
            device = torch.device(requested)
        except RuntimeError as err:
            raise BadInput(f"unknown device {requested!r}; use cuda, cuda:N, mps or cpu") from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise BadInput(f"device {requested!r} requested but CUDA is not available here")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise BadInput(f"device {requested!r} requested but MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
           "fp32": torch.float32, "float32": torch.float32}
FP16_WARNING = ("fp16 was asked for: VibeVoice is released and tested in bf16 (CUDA) and fp32 (MPS, CPU); in fp16 "
                "the σ-VAE decoder and the diffusion head can overflow (NaNs, silence or noise). Use bf16 or fp32 "
                "unless you have checked the output")


def choose_dtype(device: torch.device, requested: str | None = None, notes: list[str] | None = None) -> torch.dtype:
    """The original implementation's choice: bf16 on CUDA where the GPU supports it, else fp32; fp32 on MPS
    ("MPS requires float32") and on CPU. fp16 only when ``requested``, with a warning (appended to
    ``notes`` and logged), because VibeVoice is never run in fp16 upstream."""
    if requested:
        if requested not in _DTYPES:
            raise BadInput(f"unknown dtype {requested!r}; use one of bf16, fp16, fp32")
        dtype = _DTYPES[requested]
        if dtype == torch.float16:
            _note(notes, FP16_WARNING)
        elif dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            _note(notes, "bf16 was asked for but this GPU has no native bf16 support: it runs emulated and slowly; "
                         "fp32 (the default here) is faster")
        return dtype
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.float32


def flash_attention_problem() -> str | None:
    """Why FlashAttention 2 cannot be used here (None when ``flash_attn`` imports); "not installed" when absent."""
    try:
        if importlib.util.find_spec("flash_attn") is None:
            return "not installed"
        import flash_attn  # noqa: F401
    except Exception as err:  # a wheel built for another torch/CUDA fails with ImportError, OSError, ...
        return f"{type(err).__name__}: {err}"
    return None


def choose_attention(device: torch.device, requested: str | None = None, notes: list[str] | None = None) -> str:
    """FlashAttention 2 on CUDA when ``flash_attn`` imports (the implementation VibeVoice was tested with),
    else SDPA. When FlashAttention 2 was asked for or is installed but cannot be used, the fallback to SDPA
    comes with a warning, as in the original ("may result in lower audio quality")."""
    if requested not in (None, "flash_attention_2"):
        return requested
    problem = "it needs a CUDA device" if device.type != "cuda" else flash_attention_problem()
    if problem is None:
        return "flash_attention_2"
    if requested or problem != "not installed" and device.type == "cuda":
        _note(notes, f"FlashAttention 2 cannot be used ({problem}); using SDPA instead. VibeVoice was tested with "
                     "FlashAttention 2, and SDPA may give slightly lower audio quality")
    return "sdpa"


def _note(notes: list[str] | None, message: str) -> None:
    log.warning(message)
    if notes is not None and message not in notes:
        notes.append(message)


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}[dtype]


def load(checkpoint: Checkpoint, device: torch.device, dtype: torch.dtype, attention: str,
         notes: list[str] | None = None):
    """Load model and processor from a checked checkpoint. Attention is set on the text sub-config only:
    a plain string would also be applied to the codec sub-models, which do not support it. When
    FlashAttention 2 fails to initialise, the model is loaded with SDPA and a warning goes to ``notes``
    (the attention in use is ``model.config.text_config._attn_implementation``)."""
    from transformers import VibeVoiceForConditionalGeneration, VibeVoiceProcessor

    def from_pretrained(implementation: str):
        return VibeVoiceForConditionalGeneration.from_pretrained(
            checkpoint.path, dtype=dtype, attn_implementation={"text_config": implementation}, output_loading_info=True)

    try:
        model, info = from_pretrained(attention)
    except (ImportError, OSError, RuntimeError, ValueError) as err:
        if attention != "flash_attention_2":
            raise
        _note(notes, f"FlashAttention 2 failed to load ({type(err).__name__}: {str(err)[:300]}); using SDPA instead. "
                     "VibeVoice was tested with FlashAttention 2, and SDPA may give slightly lower audio quality")
        model, info = from_pretrained("sdpa")
    problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if problems:
        raise CheckpointError(f"loading {checkpoint.path} left weights unset or unused: {problems}")
    model = model.to(device).eval()
    processor = VibeVoiceProcessor.from_pretrained(checkpoint.path)
    if not processor.chat_template:
        raise CheckpointError(f"{checkpoint.path} has no chat template; copy chat_template.jinja from the checkpoint")
    return model, processor


# The published sizes, for estimates without a checkpoint at hand (the benchmark's 1.5B figure). The
# codec and diffusion-head settings are VibeVoiceConfig's defaults, which are those of both releases.
PUBLISHED_TEXT_CONFIGS = {
    "VibeVoice-1.5B": {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                       "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936,
                       "max_position_embeddings": 65536, "tie_word_embeddings": True},
    "VibeVoice-Large": {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                        "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
                        "max_position_embeddings": 32768, "tie_word_embeddings": False},
}


def published_config(name: str):
    """A ``VibeVoiceConfig`` with the published shapes of ``VibeVoice-1.5B`` or ``VibeVoice-Large``."""
    from transformers import VibeVoiceConfig

    text = PUBLISHED_TEXT_CONFIGS[name]
    return VibeVoiceConfig(text_config={"model_type": "qwen2", **text},
                           diffusion_head_config={"num_hidden_layers": 4, "intermediate_size": 3 * text["hidden_size"]})

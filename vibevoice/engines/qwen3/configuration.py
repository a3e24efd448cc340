"""What a Qwen3-TTS checkpoint directory is (variant, size, completeness) and how to run it here.

A local directory never downloads: it must hold ``config.json`` (``model_type: qwen3_tts``), weights,
``generation_config.json``, the text tokenizer and ``speech_tokenizer/`` with its config, feature
extractor config and weights. The variant decides which voices it speaks: ``custom_voice`` the nine
named speakers, ``voice_design`` described voices, ``base`` cloned voices. Only 1.7B models follow
instructions (the package drops them for "0b6").
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ...errors import BadInput

ENV = "VIBEVOICE_QWEN3_MODEL_DIR"  # the operator's checkpoint (the server's default for model "qwen3")
ENV_ALIASES = (ENV, "QWEN3_TTS_MODEL_DIR")  # the second: the name this engine read first
VARIANTS = {"custom_voice": "qwen3-speaker", "voice_design": "design", "base": "clone"}  # → voice kind it speaks
REQUIRED = ("config.json", "generation_config.json", "speech_tokenizer/config.json",
            "speech_tokenizer/preprocessor_config.json")


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    variant: str  # custom_voice | voice_design | base
    size: str  # 0b6 | 1b7
    speakers: tuple[str, ...]
    languages: tuple[str, ...]
    config: dict

    @property
    def instructable(self) -> bool:
        """Whether the model follows ``instruct`` text (1.7B CustomVoice and VoiceDesign)."""
        return self.variant != "base" and "0b6" not in self.size

    @property
    def voice_kind(self) -> str:
        return VARIANTS[self.variant]


def default_model_dir() -> str | None:
    """The configured checkpoint: ``$VIBEVOICE_QWEN3_MODEL_DIR`` (or ``$QWEN3_TTS_MODEL_DIR``)."""
    return next((os.environ[name] for name in ENV_ALIASES if os.environ.get(name, "").strip()), None)


def inspect_checkpoint(model_dir: str | Path | None) -> Checkpoint:
    """Check ``model_dir`` (default ``default_model_dir()``) and say what is wrong in words."""
    raw = model_dir or default_model_dir()
    if not raw:
        raise BadInput(f"the Qwen3-TTS engine needs a checkpoint directory: pass --model-dir DIR or set ${ENV}")
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise BadInput(f"Qwen3-TTS checkpoint {path} is not a directory")
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if not any(path.glob("*.safetensors")):
        missing.append("*.safetensors (the weights)")
    if not any((path / "speech_tokenizer").glob("*.safetensors")):
        missing.append("speech_tokenizer/*.safetensors")
    if not ((path / "tokenizer.json").is_file() or (path / "vocab.json").is_file()):
        missing.append("tokenizer.json or vocab.json (the text tokenizer)")
    if missing:
        raise BadInput(f"{path} is not a complete Qwen3-TTS checkpoint; missing: {', '.join(missing)}")
    config = json.loads((path / "config.json").read_text("utf-8"))
    if config.get("model_type") != "qwen3_tts":
        raise BadInput(f"{path} holds a {config.get('model_type')!r} model, not Qwen3-TTS (model_type qwen3_tts)")
    variant, size = config.get("tts_model_type"), str(config.get("tts_model_size") or "")
    if variant not in VARIANTS:
        raise BadInput(f"{path}: unknown Qwen3-TTS variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    if config.get("tokenizer_type") != "qwen3_tts_tokenizer_12hz":
        raise BadInput(f"{path} uses the {config.get('tokenizer_type')!r} speech tokenizer; only the 12 Hz one is "
                       "supported (the 25 Hz one needs torchaudio)")
    talker = config.get("talker_config", {})
    return Checkpoint(path=path.resolve(), variant=variant, size=size,
                      speakers=tuple(sorted(talker.get("spk_id") or {})),
                      languages=tuple(sorted(talker.get("codec_language_id") or {})), config=config)


def choose_runtime(device: str | None, dtype: str | None, notes: list[str]):
    """(device, torch dtype, attention): bf16 + FlashAttention 2 on CUDA when they work, SDPA otherwise, fp32 on CPU."""
    import torch

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    names = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if dtype:
        chosen = names[dtype]
    elif dev.type == "cuda" and torch.cuda.is_bf16_supported():
        chosen = torch.bfloat16
    else:
        chosen = torch.float32
    attention = "sdpa"
    if dev.type == "cuda" and chosen != torch.float32:
        try:
            import flash_attn  # noqa: F401

            attention = "flash_attention_2"
        except ImportError:
            notes.append("FlashAttention 2 is not installed; Qwen3-TTS runs with SDPA (install the gpu extra)")
    return dev, chosen, attention

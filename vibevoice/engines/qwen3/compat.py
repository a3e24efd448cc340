"""The one adapter between this project and the ``qwen-tts-compat`` package, on transformers 5.23.

Why an adapter at all: ``qwen-tts`` (the official package) pins transformers 4.57.3, and this project
pins 5.23.0 for VibeVoice; the fork ``qwen-tts-compat`` targets transformers 5.x and, unlike
``qwen-tts-hf``, never writes into transformers' shared tables (its RoPE lookup is local), so a
VibeVoice model built in the same process is unaffected. The fork is installed with ``--no-deps``
(its metadata asks for torchaudio, sox, onnxruntime and a second transformers range) and still needs
two things on 5.23, both done here and nowhere else, and both local to the ``qwen_tts`` package:

1. ``qwen_tts`` imports the 25 Hz speech tokenizer eagerly, which imports torchaudio (whose wheel does
   not load under torch 2.13) and sox. The 12 Hz checkpoints never use it, so its modeling module is
   replaced (in ``sys.modules``, before the first import) by a stand-in that refuses to be built.
2. Since transformers 5.21 Mimi is split into encoder and decoder halves, and ``MimiModel.upsample``
   is a read-only property, so the fork's ``Qwen3TTSTokenizerV2Encoder`` (a ``MimiModel`` that sets
   ``self.upsample = None``) cannot be built. It is replaced by a ``MimiModel`` built without its
   decoder half, and the speech tokenizer's weights, saved in the original flat layout, are renamed on
   load (``KEY_MAPPING``, passed to ``from_pretrained``; no global conversion table is touched).

And one thing about loading, done by ``load_model``: transformers 5 builds a model on the meta device and
materialises what the checkpoint does not hold (missing weights, and every non-persistent buffer) with
``torch.empty``, relying on ``_init_weights`` to fill it in. The package's RoPE tables (``inv_freq`` of the
talker, the code predictor and the speech tokenizer's decoder) are never filled in: the package's
``_init_weights`` has no RoPE branch, and transformers' own matches class names containing
"RotaryEmbedding" (the decoder's is "RotatoryEmbedding"); the package's ``_ensure_inv_freq`` only repairs
an all-zero table. So they held whatever the allocator returned: garbage frequencies, different each run
(NaN audio, greedy codes diverging at random frames). ``load_model`` recomputes them from the config,
refuses any other buffer it cannot vouch for, and fails (``BadInput``) when a weight is missing from the
checkpoint or has the wrong shape, instead of running on uninitialised memory.

Registering the ``qwen3_tts`` model types with transformers' Auto classes (the fork does it in
``from_pretrained``) adds names; it changes nothing an existing model type resolves to.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

from ...errors import BadInput, Unavailable

PACKAGE = "qwen-tts-compat"
PINNED = "0.1.1.post1"
_V1_MODELING = "qwen_tts.core.tokenizer_25hz.modeling_qwen3_tts_tokenizer_v1"
# The speech tokenizer's encoder in the released (flat, pre-5.21) layout → transformers 5.23's halves.
KEY_MAPPING = {
    r"^encoder\.encoder\.layers\.": "encoder.encoder.encoder_seanet.layers.",
    r"^encoder\.encoder_transformer\.": "encoder.encoder.encoder_transformer.",
    r"^encoder\.downsample\.": "encoder.encoder.downsample.",
}
# Where a weight belongs, for the message about a checkpoint that lacks it (first prefix that matches).
MODEL_PARTS = (("talker.code_predictor.", "code predictor"), ("talker.", "talker"),
               ("speaker_encoder.", "speaker encoder"), ("", "model"))
CODEC_PARTS = (("encoder.", "speech tokenizer encoder"), ("decoder.", "speech tokenizer decoder"),
               ("", "speech tokenizer"))
_LOADING_INFO = "_vibevoice_loading_info"
_lock = threading.Lock()


def installed() -> bool:
    """Whether the extra is installed (found, not imported: cheap enough for a model list)."""
    return importlib.util.find_spec("qwen_tts") is not None


def load():
    """Import ``qwen_tts`` through the adapter (once); raise ``Unavailable`` when the extra is missing."""
    with _lock:
        if "qwen_tts.inference.qwen3_tts_model" in sys.modules:
            return sys.modules["qwen_tts"]
        if importlib.util.find_spec("qwen_tts") is None:
            raise Unavailable(f"the Qwen3-TTS engine is an optional extra ({PACKAGE} {PINNED}): install it with "
                              "./scripts/install.sh qwen3")
        sys.modules.setdefault(_V1_MODELING, _v1_stand_in())
        tokenizer_v2 = importlib.import_module("qwen_tts.core.tokenizer_12hz.modeling_qwen3_tts_tokenizer_v2")
        tokenizer_v2.Qwen3TTSTokenizerV2Encoder = _encoder_class()
        package = importlib.import_module("qwen_tts")
        models = importlib.import_module("qwen_tts.core.models")
        for cls in (models.Qwen3TTSForConditionalGeneration, tokenizer_v2.Qwen3TTSTokenizerV2Model):
            cls._finalize_model_loading = staticmethod(_recording_finalize)
        return package


def _recording_finalize(model, load_config, loading_info):
    """transformers' last loading step, keeping its report (missing, unexpected, mismatched) on the model."""
    from transformers import PreTrainedModel

    info = PreTrainedModel._finalize_model_loading(model, load_config, loading_info)
    setattr(model, _LOADING_INFO, info)
    return info


def load_model(path: str, **kwargs):
    """``(Qwen3TTSModel, notes)`` from a local checkpoint: every weight loaded, every RoPE table computed.

    Raises ``BadInput`` naming the weights a checkpoint lacks (or holds in the wrong shape), and
    ``Unavailable`` when a buffer would be left uninitialised; ``notes`` name checkpoint weights unused."""
    model = load().Qwen3TTSModel.from_pretrained(path, key_mapping=KEY_MAPPING, local_files_only=True, **kwargs)
    notes = check_loaded(model.model, path, MODEL_PARTS)
    notes += check_loaded(model.model.speech_tokenizer.model, f"{path}/speech_tokenizer", CODEC_PARTS)
    return model, notes


def check_loaded(module, where: str, parts) -> list[str]:
    """Refuse a module with weights missing or mismatched, repair its RoPE tables; notes on unused weights."""
    info = module.__dict__.pop(_LOADING_INFO, None)
    if info is None:
        raise Unavailable(f"could not check which weights of {where} were loaded ({PACKAGE} {PINNED} on this "
                          "transformers); refusing to run on weights that may be uninitialised")
    tied = set(getattr(module, "all_tied_weights_keys", None) or ())
    problems = {"missing": sorted(set(info.missing_keys) - tied),
                "with the wrong shape": sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.mismatched_keys)}
    described = [f"{len(keys)} {what} ({_by_part(keys, parts)})" for what, keys in problems.items() if keys]
    if described:
        raise BadInput(f"{where} is not a complete Qwen3-TTS checkpoint: weights {'; '.join(described)}")
    restore_rope(module, where)
    unused = sorted(info.unexpected_keys)
    return [f"{where}: {len(unused)} checkpoint weights unused ({_by_part(unused, parts)})"] if unused else []


def restore_rope(module, where: str = "the model") -> int:
    """Compute every RoPE table of the package's modules from its config (transformers 5 leaves them empty);
    refuse any other non-persistent buffer that no initialisation is known to fill. Returns the tables done."""
    import torch

    restored = set()
    for name, sub in module.named_modules():
        if type(sub).__module__.startswith("qwen_tts.") and callable(getattr(sub, "rope_init_fn", None)) \
                and isinstance(getattr(sub, "inv_freq", None), torch.Tensor):
            device = sub.inv_freq.device
            inv_freq, sub.attention_scaling = sub.rope_init_fn(sub.config, device)
            sub.inv_freq = inv_freq.to(device)  # a registered buffer: replaced, still non-persistent
            sub.original_inv_freq = sub.inv_freq
            restored.add(f"{name}.inv_freq" if name else "inv_freq")
    for key, _ in module.named_non_persistent_buffers():
        owner = module.get_submodule(key.rpartition(".")[0])
        if key not in restored and not type(owner).__module__.startswith("transformers."):
            raise Unavailable(f"{where}: buffer {key} ({type(owner).__name__}) is not in the checkpoint and nothing "
                              "is known to compute it; refusing to run on uninitialised memory")
    return len(restored)


def _by_part(keys: list[str], parts) -> str:
    """``talker: 3, speech tokenizer decoder: 1; e.g. talker.model.norm.weight``."""
    counts: dict[str, int] = {}
    for key in keys:
        part = next(label for prefix, label in parts if key.startswith(prefix))
        counts[part] = counts.get(part, 0) + 1
    return ", ".join(f"{part}: {n}" for part, n in counts.items()) + f"; e.g. {keys[0]}"


def _v1_stand_in() -> types.ModuleType:
    """The 25 Hz tokenizer's modeling module, minus torchaudio: a class that refuses to be built."""

    class Qwen3TTSTokenizerV1Model:
        def __init__(self, *args, **kwargs):
            raise Unavailable("this checkpoint uses the 25 Hz speech tokenizer, which needs torchaudio; the "
                              "engine supports the 12 Hz Qwen3-TTS checkpoints")

        @classmethod
        def from_pretrained(cls, *args, **kwargs):
            return cls()

    module = types.ModuleType(_V1_MODELING, "stand-in: the 25 Hz tokenizer is not supported (needs torchaudio)")
    module.Qwen3TTSTokenizerV1Model = Qwen3TTSTokenizerV1Model
    return module


def _encoder_class():
    """The speech tokenizer's encoder as transformers 5.23 builds Mimi: the encoder half and the quantizer."""
    import copy

    from transformers import MimiModel

    class Qwen3TTSTokenizerV2Encoder(MimiModel):
        def __init__(self, config):
            config = copy.deepcopy(config)
            config.decoder_config = None  # MimiConfig's setter drops the decoder half
            super().__init__(config)

    return Qwen3TTSTokenizerV2Encoder

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

Registering the ``qwen3_tts`` model types with transformers' Auto classes (the fork does it in
``from_pretrained``) adds names; it changes nothing an existing model type resolves to.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

from ...errors import Unavailable

PACKAGE = "qwen-tts-compat"
PINNED = "0.1.1.post1"
_V1_MODELING = "qwen_tts.core.tokenizer_25hz.modeling_qwen3_tts_tokenizer_v1"
# The speech tokenizer's encoder in the released (flat, pre-5.21) layout → transformers 5.23's halves.
KEY_MAPPING = {
    r"^encoder\.encoder\.layers\.": "encoder.encoder.encoder_seanet.layers.",
    r"^encoder\.encoder_transformer\.": "encoder.encoder.encoder_transformer.",
    r"^encoder\.downsample\.": "encoder.encoder.downsample.",
}
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
        return importlib.import_module("qwen_tts")


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

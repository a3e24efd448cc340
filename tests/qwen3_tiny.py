"""Tiny random Qwen3-TTS checkpoints (CustomVoice, VoiceDesign, Base; "0b6" or "1b7"), built and saved at
test time in the layout of the released directories, so the engine loads them the way it loads a user's.

The real architecture at toy sizes: a 2-layer talker with its code predictor, a narrow speaker encoder,
and the 12 Hz speech tokenizer (a Mimi encoder and the fork's decoder, still 1920 samples per frame).
Saved as the releases are: ``config.json``, ``generation_config.json``, ``model.safetensors``, tokenizer
files, and ``speech_tokenizer/`` with its own config, feature extractor and weights in the original flat
Mimi layout (which the engine's adapter renames on load, as it does for a real download).
Every weight of the state dict is saved (the engine refuses a checkpoint that lacks one); like the
releases, no RoPE table (``inv_freq``, a non-persistent buffer the adapter computes on load).

The talker's row for the end-of-speech code is zero, so its logit is 0, the middle of the codes' random
logits: neither greedy decoding nor top-50 sampling ever chooses it and every take runs to its cap. With a
random row, sampling stopped about one take in forty early (1 in 2,049 per frame), and a test of the
runaway guard failed whenever the job's directory gave a seed that did.

The text tokenizer is a byte-level BPE with no merges plus the chat markers and "assistant"/"user" as
whole tokens: the model slices ``<|im_start|>assistant\\n`` as exactly 3 tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

SPEAKERS = ["vivian", "serena", "uncle_fu", "dylan", "eric", "ryan", "aiden", "ono_anna", "sohee"]
LANGUAGES = {"chinese": 2050, "english": 2051, "japanese": 2052, "korean": 2053}
CODEBOOK = 2048
DECODER_GAIN = 1.0
SPECIAL_TEXT = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tts_pad>", "<tts_bos>", "<tts_eos>"]
WORDS = ["assistant", "user"]
SPEAKER_ENCODER_FIELDS = ("mel_dim", "enc_dim", "enc_channels", "enc_kernel_sizes", "enc_dilations",
                          "enc_attention_channels", "enc_res2net_scale", "enc_se_channels", "sample_rate")


def _byte_symbols() -> list[str]:
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def tiny_tokenizer():
    from transformers import Qwen2TokenizerFast

    vocab = {symbol: i for i, symbol in enumerate(_byte_symbols())}
    vocab.update({token: len(vocab) + i for i, token in enumerate(SPECIAL_TEXT + WORDS)})
    tokenizer = Qwen2TokenizerFast(vocab=vocab, merges=[], unk_token=None, bos_token=None,
                                   eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TEXT[1:]})
    tokenizer.add_tokens(WORDS)
    assert len(tokenizer("<|im_start|>assistant\n")["input_ids"]) == 3
    return tokenizer


def tiny_config(variant: str = "custom_voice", size: str = "1b7", hidden: int = 32, layers: int = 2):
    from qwen_tts.core.models import Qwen3TTSConfig

    text_ids = {t: 256 + i for i, t in enumerate(SPECIAL_TEXT)}
    specials = dict(codec_pad_id=2054, codec_bos_id=2055, codec_eos_token_id=2056, codec_think_id=2057,
                    codec_nothink_id=2058, codec_think_bos_id=2059, codec_think_eos_id=2060)
    speakers = {name: 2061 + i for i, name in enumerate(SPEAKERS)} if variant == "custom_voice" else {}
    heads, head_dim = 4, hidden // 4
    talker = dict(
        vocab_size=CODEBOOK + 1024, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=2, head_dim=head_dim, num_code_groups=16,
        text_hidden_size=hidden, text_vocab_size=len(text_ids) + 256 + len(WORDS), max_position_embeddings=4096,
        rope_scaling={"rope_type": "default", "mrope_section": [1, 1, head_dim // 2 - 2], "interleaved": True},
        spk_id=speakers, spk_is_dialect={name: False for name in speakers}, codec_language_id=LANGUAGES,
        code_predictor_config=dict(vocab_size=CODEBOOK, hidden_size=hidden, intermediate_size=2 * hidden,
                                   num_hidden_layers=1, num_attention_heads=heads, num_key_value_heads=2,
                                   head_dim=head_dim, num_code_groups=16, pad_token_id=None,
                                   max_position_embeddings=64),
        **specials,
    )
    speaker_encoder = dict(mel_dim=128, enc_dim=hidden, enc_channels=[16, 16, 16, 16, 48],
                           enc_attention_channels=8, enc_res2net_scale=4, enc_se_channels=8)
    return Qwen3TTSConfig(talker_config=talker, speaker_encoder_config=speaker_encoder,
                          tokenizer_type="qwen3_tts_tokenizer_12hz", tts_model_size=size, tts_model_type=variant,
                          im_start_token_id=text_ids["<|im_start|>"], im_end_token_id=text_ids["<|im_end|>"],
                          tts_pad_token_id=text_ids["<tts_pad>"], tts_bos_token_id=text_ids["<tts_bos>"],
                          tts_eos_token_id=text_ids["<tts_eos>"])


def tiny_speech_tokenizer_config():
    from qwen_tts.core.tokenizer_12hz.configuration_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Config

    encoder = dict(hidden_size=16, num_filters=4, num_residual_layers=1, upsampling_ratios=[8, 6, 5, 4],
                   codebook_size=CODEBOOK, codebook_dim=16, num_quantizers=16, num_semantic_quantizers=1,
                   num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2, head_dim=8,
                   intermediate_size=32, sliding_window=16, frame_rate=12.5, sampling_rate=24000,
                   vector_quantization_hidden_dimension=16, use_streaming=False)
    decoder = dict(codebook_size=CODEBOOK, codebook_dim=16, hidden_size=16, latent_dim=16, num_attention_heads=2,
                   num_key_value_heads=2, sliding_window=8, intermediate_size=32, num_hidden_layers=1,
                   num_quantizers=16, upsample_rates=[8, 5, 4, 3], upsampling_ratios=[2, 2], decoder_dim=16,
                   head_dim=8)
    return Qwen3TTSTokenizerV2Config(encoder_config=encoder, decoder_config=decoder)


def build_tiny_checkpoint(directory: Path, variant: str = "custom_voice", size: str = "1b7", seed: int = 0) -> Path:
    """Build, randomise and save one variant; returns ``directory``."""
    from safetensors.torch import save_file
    from transformers import EncodecFeatureExtractor

    from vibevoice.engines.qwen3 import compat

    compat.load()
    from qwen_tts.core.models import Qwen3TTSForConditionalGeneration, Qwen3TTSProcessor
    from qwen_tts.core.tokenizer_12hz.modeling_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Model

    directory = Path(directory)
    (directory / "speech_tokenizer").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = tiny_config(variant, size)
    model = Qwen3TTSForConditionalGeneration(config).eval()
    with torch.no_grad():  # the end-of-speech logit pinned at 0 (see the module docstring)
        model.talker.codec_head.weight[config.talker_config.codec_eos_token_id].zero_()
    _save(model, config, directory, save_file)
    Qwen3TTSProcessor(tokenizer=tiny_tokenizer()).save_pretrained(directory)
    (directory / "generation_config.json").write_text(json.dumps(
        {"do_sample": True, "top_k": 50, "top_p": 1.0, "temperature": 0.9, "repetition_penalty": 1.05,
         "subtalker_dosample": True, "subtalker_top_k": 50, "subtalker_top_p": 1.0, "subtalker_temperature": 0.9,
         "max_new_tokens": 2048}))
    codec_config = tiny_speech_tokenizer_config()
    codec = Qwen3TTSTokenizerV2Model(codec_config).eval()
    with torch.no_grad():  # the decoder's codebooks start at zero (exact silence): give them speech-like levels
        for name, p in codec.named_parameters():
            if "embedding_sum" in name:
                p.normal_(0, 1.0)
            elif name.startswith("decoder.") and p.ndim >= 2:  # the 0.02 init decodes at ~1e-10
                p.normal_(0, DECODER_GAIN / p[0].numel() ** 0.5)
    _save(codec, codec_config, directory / "speech_tokenizer", save_file, flat_mimi=True)
    EncodecFeatureExtractor(feature_size=1, sampling_rate=24000).save_pretrained(directory / "speech_tokenizer")
    return directory


def _save(model, config, directory: Path, save_file, flat_mimi: bool = False) -> None:
    """``save_pretrained`` fails on this model (its tied-weights list): write weights and config directly."""
    from vibevoice.engines.qwen3.compat import KEY_MAPPING

    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if flat_mimi:  # back to the released layout, which the adapter's key mapping reads
        reverse = {target: source.lstrip("^").replace("\\.", ".") for source, target in KEY_MAPPING.items()}
        state = {next((old + k[len(new):] for new, old in reverse.items() if k.startswith(new)), k): v
                 for k, v in state.items()}
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    data = config.to_dict()
    if "speaker_encoder_config" in data:  # the released files hold only the encoder's own fields
        encoder = config.speaker_encoder_config
        data["speaker_encoder_config"] = {k: getattr(encoder, k) for k in SPEAKER_ENCODER_FIELDS}
        data["talker_config"]["rope_scaling"] = dict(config.talker_config.rope_scaling)
    (directory / "config.json").write_text(json.dumps(data, indent=1, default=str))


def tiny_dirs(root: Path, size: str = "1b7") -> dict[str, Path]:
    return {v: build_tiny_checkpoint(root / f"{v}-{size}", v, size) for v in ("custom_voice", "voice_design", "base")}

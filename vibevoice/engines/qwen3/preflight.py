"""Memory and time for a script on a device, from the checkpoint's own shapes (nothing is loaded).

Weights: the tensor sizes in the safetensors headers (talker, code predictor, speaker encoder and the
speech tokenizer), at the run's dtype. Per line in a batch: the talker's KV cache for the prompt plus
the line's frame cap (``2 × layers × kv_heads × head_dim`` per position), the code predictor's
(reset every frame: 17 positions) and the decoded audio. A fixed margin covers activations and
allocator slack. Time: expected seconds of speech × the engine's real-time factor on that device.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass

from .configuration import Checkpoint
from .generation import frame_cap

MARGIN_BYTES = 512 * 2**20
PROMPT_TOKENS = 64
BYTES = {"torch.float32": 4, "torch.bfloat16": 2, "torch.float16": 2}


@dataclass(frozen=True)
class Estimate:
    weights_bytes: int
    per_line_bytes: int
    batch: int
    peak_bytes: int
    audio_seconds: float
    compute_seconds: float


def weight_elements(checkpoint: Checkpoint) -> int:
    total = 0
    for path in [*checkpoint.path.glob("*.safetensors"), *(checkpoint.path / "speech_tokenizer").glob("*.safetensors")]:
        with open(path, "rb") as f:
            header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
        total += sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
    return total


def per_line_bytes(checkpoint: Checkpoint, frames: int, element: int) -> int:
    talker = checkpoint.config["talker_config"]
    predictor = talker.get("code_predictor_config", {})
    heads = talker.get("num_attention_heads", 16)
    head_dim = talker.get("head_dim") or talker["hidden_size"] // heads
    kv = 2 * talker["num_hidden_layers"] * talker.get("num_key_value_heads", heads) * head_dim
    predictor_kv = 2 * predictor.get("num_hidden_layers", 5) * predictor.get("num_key_value_heads", 8) * \
        predictor.get("head_dim", 128) * 17
    audio = frames * 1920 * 4
    return (kv * (PROMPT_TOKENS + frames) + predictor_kv) * element + audio


def estimate(checkpoint: Checkpoint, lines: list[tuple[str, str]], dtype: str, batch: int, rtf: float) -> Estimate:
    """``lines``: (text, language) of every line; peak for the longest lines batched together."""
    element = BYTES.get(dtype, 4)
    caps = sorted((frame_cap(text, language) for text, language in lines), reverse=True) or [0]
    weights = weight_elements(checkpoint) * element
    per_line = per_line_bytes(checkpoint, caps[0], element)
    peak = weights + per_line * min(batch, len(caps)) + MARGIN_BYTES
    from ...script import estimate_speech_seconds

    seconds = sum(estimate_speech_seconds(text, language) for text, language in lines)
    return Estimate(weights, per_line, batch, peak, seconds, seconds * rtf / max(1.0, math.sqrt(batch)))


def batch_for_memory(checkpoint: Checkpoint, dtype, limit: int = 32) -> int:
    """The largest batch (up to ``limit``) whose lines of 30 s each fit in the free CUDA memory."""
    import torch

    free, _ = torch.cuda.mem_get_info()
    element = BYTES.get(str(dtype), 2)
    room = free - weight_elements(checkpoint) * element - MARGIN_BYTES
    return max(1, min(limit, room // max(1, per_line_bytes(checkpoint, frame_cap("x" * 450, "en"), element))))


def describe(est: Estimate) -> str:
    gib = 2**30
    return (f"weights {est.weights_bytes / gib:.2f} GiB + {est.batch} × {est.per_line_bytes / 2**20:.0f} MiB per "
            f"line → peak about {est.peak_bytes / gib:.2f} GiB; {est.audio_seconds / 60:.1f} min of speech in about "
            f"{est.compute_seconds / 60:.1f} min")

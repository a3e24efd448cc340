"""The adapter around transformers' VibeVoice generation: the only file that touches its private parts.

``VibeVoiceForConditionalGeneration.generate()`` speaks a whole script in one call and throws away,
when it returns, state the next call would need to continue the same speech stream. Passing the KV
cache back alone runs but sounds wrong at every boundary. To cut a long generation into chunk calls
that give *bit-identical* audio to one uninterrupted call, this module carries, from one call to the
next (``Carry``):

1. the main KV cache and the token sequence / attention mask it belongs to;
2. the CFG negative branch: its input ids, attention mask and its own KV cache;
3. the acoustic-decoder and semantic-encoder streaming convolution caches;
4. the embedding of the last generated frame, computed at the end of a step but fed to the LM only
   at the next one;
5. the torch RNG state (diffusion noise), and which rows of a batch have finished.

It does so with hooks (``ChunkHooks``) installed on the model instance for the duration of one
``generate()`` call, around private methods of ``VibeVoiceGenerationMixin`` (see ``HOOKED``). Those
are pinned to transformers 5.23.0: ``check_transformers()`` compares their source with what this
adapter was written against and refuses to run on a change (a test calls it too), because a silent
change here would produce wrong audio, not an error.

Two upstream behaviours are changed on purpose (both measured in ``bench/bench_vibevoice.py``):

* ``guidance_scale != 1`` also switches on transformers' generic token-level CFG logits processor,
  which runs one extra full LM forward per step with a third, growing KV cache. VibeVoice's CFG is
  meant for the diffusion head only (the original implementation has no token-level CFG), so the
  processor is dropped (``token_cfg=False``).
  Measured (``bench/bench_vibevoice.py``, tiny config): 22 instead of 14 LM forwards for 8 steps,
  i.e. +1 full forward per frame on top of the 2 (main + negative branch) VibeVoice needs; on the
  tiny model the time grows only ~1 % because diffusion and codecs dominate there, on real sizes the
  LM forwards dominate. The third cache grows by one KV entry per frame: +1.1 GiB per 90 minutes on
  1.5B bf16. It also cannot be carried across chunk calls, so chunked generation requires it off.
* The codec streaming caches are not reset when a speech segment ends (``<|vision_end|>``); the
  original implementation zeroes them for that row, so the next segment does not start from the
  previous segment's tail. ``reset_codec_at_segment_end=True`` restores that. Measured (tiny
  config, random weights): the next segment's first frame differs by ~110 % of its RMS, frames 4
  and later by ~3 %; the segment before the boundary is bit-identical either way.

Persistence: ``Carry.to_tensors()`` gives plain tensors (``torch.load(weights_only=True)`` reads
them back) and ``Carry.from_tensors()`` rebuilds the cache objects. KV caches only grow, except that
the negative branch rewrites its *last* position when a new segment starts, so a delta from one
position before the previous end (``kv_delta``) is enough to make them append-only on disk.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ...errors import Unavailable

PINNED_TRANSFORMERS = "5.23.0"

# Private pieces of transformers this adapter relies on, with a hash of their source at the pinned
# release. `_sample` is not wrapped, but the order of calls inside it is what the hooks assume.
HOOKED = {
    "VibeVoiceGenerationMixin._sample": "d7a0a5220638c5c5",
    "VibeVoiceGenerationMixin._prepare_negative_generation": "fb315a2c0bd792b1",
    "VibeVoiceGenerationMixin._step_negative_branch": "c7fad2e3300d71a9",
    "VibeVoiceGenerationMixin._reset_negative_cache_for_audio_start": "4683b8d5abcede88",
    "VibeVoiceGenerationMixin._decode_audio_latent": "13d3f2b5aceac07b",
    "VibeVoiceGenerationMixin._get_logits_processor": "33fdc6b9a62794a5",
    "GenerationMixin._prefill": "4c6ef98b165c49e9",
    "VibeVoiceAcousticTokenizerConv1dCacheLayer.update": "9600c2822a078f23",
    "VibeVoiceAcousticTokenizerEncoderModel.forward": "030bd2b822cb2f6e",
}


class AdapterMismatch(Unavailable):
    """The installed transformers differs from the release the state adapter was written against."""


def _hooked_objects() -> dict[str, Any]:
    from transformers.generation.utils import GenerationMixin
    from transformers.models.vibevoice.generation_vibevoice import VibeVoiceGenerationMixin
    from transformers.models.vibevoice_acoustic_tokenizer import modeling_vibevoice_acoustic_tokenizer as codec

    owners = {"VibeVoiceGenerationMixin": VibeVoiceGenerationMixin, "GenerationMixin": GenerationMixin,
              "VibeVoiceAcousticTokenizerConv1dCacheLayer": codec.VibeVoiceAcousticTokenizerConv1dCacheLayer,
              "VibeVoiceAcousticTokenizerEncoderModel": codec.VibeVoiceAcousticTokenizerEncoderModel}
    found = {}
    for name in HOOKED:
        owner, attr = name.split(".")
        found[name] = getattr(owners[owner], attr, None)
    return found


def source_fingerprints() -> dict[str, str | None]:
    """Short sha256 of the current source of every hooked piece (None when it no longer exists)."""
    out = {}
    for name, obj in _hooked_objects().items():
        out[name] = hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16] if obj is not None else None
    return out


def check_transformers() -> None:
    """Raise ``AdapterMismatch`` naming what changed when transformers is not the pinned release
    (``Unavailable`` when transformers or diffusers is not installed at all)."""
    try:
        import diffusers  # noqa: F401  (its DPM-Solver is generation's default noise scheduler)
        import transformers
        from transformers import VibeVoiceForConditionalGeneration  # noqa: F401
    except ImportError as err:
        raise Unavailable(f"the VibeVoice engine needs transformers=={PINNED_TRANSFORMERS} and diffusers ({err}); "
                          f"install them: pip install transformers=={PINNED_TRANSFORMERS} diffusers") from err

    changed = [name for name, digest in source_fingerprints().items() if digest != HOOKED[name]]
    if transformers.__version__ != PINNED_TRANSFORMERS or changed:
        raise AdapterMismatch(
            f"the VibeVoice engine's state adapter was written against transformers=={PINNED_TRANSFORMERS}; "
            f"installed is {transformers.__version__}"
            + (f", and these private methods it hooks have changed: {', '.join(changed)}" if changed else "")
            + f". Install the pinned release: pip install transformers=={PINNED_TRANSFORMERS}"
        )


# ------------------------------------------------------------------------------------------------------
# What one call leaves behind for the next


@dataclass
class Carry:
    """Everything a chunk call hands to the next one (see the module docstring)."""

    sequences: torch.LongTensor  # (batch, prompt + generated)
    attention_mask: torch.LongTensor  # same shape; left padding for batches
    cache: Any  # transformers Cache of the main branch
    negative_ids: torch.LongTensor
    negative_mask: torch.LongTensor
    negative_cache: Any
    acoustic_cache: Any | None  # VibeVoiceAcousticTokenizerConv1dPaddingCache, None before the first frame
    semantic_cache: Any | None
    pending_embeds: torch.Tensor  # (batch, 1, hidden): the next LM input
    rng: dict[str, torch.Tensor]
    finished: torch.BoolTensor  # rows that produced EOS
    steps: int  # LM steps taken after the prompt
    prompt_length: int

    # -- persistence -----------------------------------------------------------------------------------

    def to_tensors(self) -> dict[str, Any]:
        """The small part as plain tensors; the KV caches go through ``kv_delta`` (they are big)."""
        return {
            "sequences": self.sequences, "attention_mask": self.attention_mask,
            "negative_ids": self.negative_ids, "negative_mask": self.negative_mask,
            "acoustic_cache": conv_cache_to_tensors(self.acoustic_cache),
            "semantic_cache": conv_cache_to_tensors(self.semantic_cache),
            "pending_embeds": self.pending_embeds, "rng": self.rng, "finished": self.finished,
            "steps": torch.tensor(self.steps), "prompt_length": torch.tensor(self.prompt_length),
            "kv_length": torch.tensor(cache_length(self.cache)),
            "negative_kv_length": torch.tensor(cache_length(self.negative_cache)),
        }

    @classmethod
    def from_tensors(cls, small: dict[str, Any], main_kv: list[tuple[torch.Tensor, torch.Tensor]],
                     negative_kv: list[tuple[torch.Tensor, torch.Tensor]], text_config, device: torch.device,
                     static_length: int | None = None, offload: bool = False) -> "Carry":
        to = lambda t: t.to(device)  # noqa: E731
        return cls(
            sequences=to(small["sequences"]), attention_mask=to(small["attention_mask"]),
            cache=cache_from_tensors(main_kv, text_config, device, static_length, offload),
            negative_ids=to(small["negative_ids"]), negative_mask=to(small["negative_mask"]),
            negative_cache=cache_from_tensors(negative_kv, text_config, device, static_length, offload),
            acoustic_cache=conv_cache_from_tensors(small["acoustic_cache"], device),
            semantic_cache=conv_cache_from_tensors(small["semantic_cache"], device),
            pending_embeds=to(small["pending_embeds"]), rng=small["rng"], finished=to(small["finished"]),
            steps=int(small["steps"]), prompt_length=int(small["prompt_length"]),
        )

    def nbytes(self) -> int:
        """Bytes held by this state (KV caches included), for the memory benchmark."""
        total = sum(t.numel() * t.element_size() for k, v in _kv(self.cache) + _kv(self.negative_cache) for t in (k, v))
        for conv in (self.acoustic_cache, self.semantic_cache):
            total += sum(t.numel() * t.element_size() for t in conv_cache_to_tensors(conv).values())
        return total + self.pending_embeds.numel() * self.pending_embeds.element_size()


def _kv(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for layer in cache.layers:
        if getattr(layer, "keys", None) is None or not layer.is_initialized:
            continue
        n = cache_length_of_layer(layer)
        out.append((layer.keys[:, :, :n], layer.values[:, :, :n]))
    return out


def cache_length_of_layer(layer) -> int:
    return int(layer.get_seq_length())


def cache_length(cache) -> int:
    return int(cache.get_seq_length()) if cache is not None else 0


def kv_delta(cache, start: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Keys/values from position ``start`` on, per layer, as contiguous CPU tensors."""
    return [(k[:, :, start:].contiguous().cpu(), v[:, :, start:].contiguous().cpu()) for k, v in _kv(cache)]


def kv_join(pieces: list[tuple[int, list[tuple[torch.Tensor, torch.Tensor]]]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Undo a sequence of ``(start, kv_delta(cache, start))``: later pieces overwrite overlaps."""
    layers: list[tuple[torch.Tensor, torch.Tensor]] = []
    for start, delta in pieces:
        if not layers:
            layers = [(k, v) for k, v in delta]
            continue
        layers = [(torch.cat([k0[:, :, :start], k], dim=2), torch.cat([v0[:, :, :start], v], dim=2))
                  for (k0, v0), (k, v) in zip(layers, delta)]
    return layers


def cache_from_tensors(kv: list[tuple[torch.Tensor, torch.Tensor]], text_config, device, static_length=None,
                       offload: bool = False):
    """A DynamicCache (or a StaticCache of ``static_length``; offloaded if asked) holding exactly ``kv``."""
    from transformers import DynamicCache, StaticCache

    cache = (StaticCache(config=text_config, max_cache_len=static_length, offloading=offload) if static_length
             else DynamicCache(config=text_config, offloading=offload))
    for layer, (k, v) in zip(cache.layers, kv):
        layer.update(k.to(device), v.to(device))
    return cache


def conv_cache_to_tensors(cache) -> dict[str, torch.Tensor]:
    if cache is None:
        return {}
    return {key: layer.cache.detach().cpu().clone() for key, layer in cache.layers.items() if layer.is_initialized}


def conv_cache_from_tensors(tensors: dict[str, torch.Tensor], device):
    """Rebuild a codec streaming cache; each layer's left padding is its stored width."""
    from transformers.models.vibevoice_acoustic_tokenizer.modeling_vibevoice_acoustic_tokenizer import (
        VibeVoiceAcousticTokenizerConv1dCacheLayer,
        VibeVoiceAcousticTokenizerConv1dPaddingCache,
    )

    if not tensors:
        return None
    cache = VibeVoiceAcousticTokenizerConv1dPaddingCache()
    for key, tensor in tensors.items():
        layer = VibeVoiceAcousticTokenizerConv1dCacheLayer()
        layer.cache = tensor.to(device).clone()
        layer.left_pad, layer.in_channels, layer.is_initialized = tensor.shape[-1], tensor.shape[1], True
        cache.layers[key] = layer
    return cache


def zero_conv_rows(cache, rows: torch.Tensor) -> None:
    """Reset the streaming state of ``rows`` (what the original code does at the end of a segment)."""
    if cache is None:
        return
    for layer in cache.layers.values():
        if layer.is_initialized:
            layer.cache[rows.to(layer.cache.device)] = 0


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """Diffusion noise is drawn on the CPU generator; clip encoding may use the device's."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


# ------------------------------------------------------------------------------------------------------
# Hooks for one generate() call


@dataclass
class _Step:
    """What the hooks see during one LM step."""

    index: int = 0
    mask: torch.Tensor | None = None  # rows that produced an audio frame in this step
    acoustic_embed: torch.Tensor | None = None
    semantic_embed: torch.Tensor | None = None


class StepProcessor:
    """A logits processor that marks step boundaries; public API, called once per step after the forward.

    It also applies the two per-step rules the carried state needs: rows that finished in an earlier
    call are held at EOS (a new ``_sample`` forgets which rows were done), and a row whose previous
    token ended a speech segment gets its codec caches zeroed before they are used again.
    """

    def __init__(self, hooks: "ChunkHooks"):
        self.hooks = hooks

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        hooks = self.hooks
        hooks.step = _Step(index=hooks.step.index + 1)
        if hooks.reset_codec:
            ended = input_ids[:, -1] == hooks.audio_eos_id
            if ended.any():
                rows = ended.nonzero().view(-1)
                zero_conv_rows(hooks.acoustic_cache, rows)
                zero_conv_rows(hooks.semantic_cache, rows)
        if hooks.finished is not None and hooks.finished.any():
            held = torch.full_like(scores[0], float("-inf"))
            held[hooks.eos_id] = 0.0
            scores = torch.where(hooks.finished.to(scores.device)[:, None], held, scores)
        return scores


class ChunkHooks:
    """Install on a model for one ``generate()`` call; afterwards ``collect()`` returns the ``Carry``.

    ``carry`` is the state from the previous call (None for the first call of a generation).
    ``on_frame(rows, audio)`` receives each decoded frame as it is produced: ``rows`` the batch rows
    that produced one, ``audio`` a (len(rows), samples) float tensor.
    """

    def __init__(self, model, carry: Carry | None = None, *, on_frame: Callable | None = None,
                 token_cfg: bool = False, reset_codec_at_segment_end: bool = True):
        self.model, self.carry, self.on_frame = model, carry, on_frame
        self.token_cfg, self.reset_codec = token_cfg, reset_codec_at_segment_end
        config = model.config
        self.eos_id, self.audio_eos_id = config.eos_token_id, config.audio_eos_token_id
        self.step = _Step()
        self.finished = carry.finished.clone() if carry is not None else None
        self.acoustic_cache = carry.acoustic_cache if carry else None
        self.semantic_cache = carry.semantic_cache if carry else None
        self.negative: tuple[torch.Tensor, dict] | None = (
            (carry.negative_ids, {"attention_mask": carry.negative_mask, "past_key_values": carry.negative_cache})
            if carry else None)
        self.processor = StepProcessor(self)
        self._removers: list[Callable[[], None]] = []

    # -- installation ----------------------------------------------------------------------------------

    def __enter__(self) -> "ChunkHooks":
        m = self.model
        if self.carry is not None:
            set_rng_state(self.carry.rng, m.device)
        self._patch("_get_logits_processor", self._get_logits_processor)
        self._patch("_prepare_negative_generation", self._prepare_negative_generation)
        self._patch("_step_negative_branch", self._step_negative_branch)
        self._patch("_decode_audio_latent", self._decode_audio_latent)
        self._patch("_prefill", self._prefill)
        encoder = m.model.semantic_tokenizer_encoder
        handles = [
            encoder.register_forward_pre_hook(self._semantic_pre, with_kwargs=True),
            encoder.register_forward_hook(self._semantic_post),
            m.model.multi_modal_projector.register_forward_hook(self._acoustic_embed),
            m.model.semantic_connector.register_forward_hook(self._semantic_embed),
        ]
        self._removers += [h.remove for h in handles]
        return self

    def __exit__(self, *exc) -> None:
        for remove in reversed(self._removers):
            remove()
        self._removers.clear()

    def _patch(self, name: str, replacement: Callable) -> None:
        original = getattr(self.model, name)
        self.originals = getattr(self, "originals", {})
        self.originals[name] = original
        self.model.__dict__[name] = replacement
        self._removers.append(lambda: self.model.__dict__.pop(name, None))

    # -- the hooks -------------------------------------------------------------------------------------

    def _get_logits_processor(self, *args, **kwargs):
        from transformers.generation.logits_process import UnbatchedClassifierFreeGuidanceLogitsProcessor

        processors = self.originals["_get_logits_processor"](*args, **kwargs)
        if not self.token_cfg:
            processors[:] = [p for p in processors if not isinstance(p, UnbatchedClassifierFreeGuidanceLogitsProcessor)]
        return processors

    def _prepare_negative_generation(self, batch_size, generation_config, device):
        if self.negative is None:
            self.negative = self.originals["_prepare_negative_generation"](batch_size, generation_config, device)
        return self.negative

    def _step_negative_branch(self, diffusion_mask, next_tokens, inputs_embeds, negative_input_ids,
                              negative_model_kwargs, negative_forward):
        # `_sample` passes the previous step's embeddings, a local that is None in the first step of a
        # call: continuing, that is the carried frame embedding (else the branch sees a token embedding).
        if inputs_embeds is None and self.carry is not None:
            inputs_embeds = self.carry.pending_embeds
        condition, ids, model_kwargs = self.originals["_step_negative_branch"](
            diffusion_mask, next_tokens, inputs_embeds, negative_input_ids, negative_model_kwargs, negative_forward)
        self.negative = (ids, model_kwargs)
        return condition, ids, model_kwargs

    def _decode_audio_latent(self, audio_latent, diffusion_mask, batch_size, acoustic_cache):
        if acoustic_cache is None:
            acoustic_cache = self.acoustic_cache
        output = self.originals["_decode_audio_latent"](audio_latent, diffusion_mask, batch_size, acoustic_cache)
        self.acoustic_cache = output.padding_cache
        self.step.mask = diffusion_mask.clone()
        if self.on_frame is not None:
            rows = diffusion_mask.nonzero().view(-1)
            self.on_frame(rows.cpu(), output.audio[rows.to(output.audio.device), 0].detach())
        return output

    def _semantic_pre(self, module, args, kwargs):
        if kwargs.get("padding_cache") is None and self.semantic_cache is not None:
            kwargs["padding_cache"] = self.semantic_cache
        return args, kwargs

    def _semantic_post(self, module, args, output):
        self.semantic_cache = output.padding_cache

    def _acoustic_embed(self, module, args, output):
        self.step.acoustic_embed = output

    def _semantic_embed(self, module, args, output):
        self.step.semantic_embed = output

    def _prefill(self, input_ids, generation_config, model_kwargs, is_first_iteration=True):
        """Continuing: instead of a prefill, the decode step ``_sample`` would have taken next."""
        m = self.model
        if self.carry is None:
            return self.originals["_prefill"](input_ids, generation_config, model_kwargs, is_first_iteration)
        inputs = m.prepare_inputs_for_generation(input_ids, next_sequence_length=1, **model_kwargs)
        inputs.pop("input_values", None)
        inputs.pop("padding_mask", None)
        inputs["inputs_embeds"] = self.carry.pending_embeds
        forward = (m.get_compiled_call(generation_config.compile_config)
                   if m._valid_auto_compile_criteria(model_kwargs, generation_config) else m.__call__)
        with m._optimize_model_for_decode():
            return forward(**inputs, return_dict=True)

    # -- after the call --------------------------------------------------------------------------------

    def collect(self, output, attention_mask: torch.Tensor, prompt_length: int) -> Carry:
        """The state after ``output`` (a ``return_dict_in_generate`` result of this call)."""
        m = self.model
        sequences = output.sequences
        new = sequences.shape[1] - attention_mask.shape[1]
        mask = torch.cat([attention_mask, attention_mask.new_ones(attention_mask.shape[0], new)], dim=1)
        finished = (sequences[:, -new:] == self.eos_id).any(dim=1) if new else torch.zeros_like(sequences[:, 0], dtype=torch.bool)
        if self.finished is not None:
            finished |= self.finished
        pending = m.get_input_embeddings()(sequences[:, -1]).unsqueeze(1)
        step = self.step
        if step.mask is not None and step.acoustic_embed is not None and step.semantic_embed is not None:
            # exactly `_sample`'s `next_inputs_embeds[diffusion_mask] = acoustic + semantic`
            embeds = step.acoustic_embed + step.semantic_embed.to(step.acoustic_embed.device)
            pending[step.mask] = embeds.to(pending.device)
        negative_ids, negative_kwargs = self.negative
        return Carry(
            sequences=sequences, attention_mask=mask, cache=output.past_key_values,
            negative_ids=negative_ids, negative_mask=negative_kwargs["attention_mask"],
            negative_cache=negative_kwargs["past_key_values"], acoustic_cache=self.acoustic_cache,
            semantic_cache=self.semantic_cache, pending_embeds=pending.detach(), rng=rng_state(m.device),
            finished=finished, steps=(self.carry.steps if self.carry else 0) + new, prompt_length=prompt_length,
        )


@dataclass
class Frames:
    """Collects streamed frames per row (what the page plays while the model is still generating)."""

    rows: int
    audio: list[list[torch.Tensor]] = field(default_factory=list)

    def __post_init__(self):
        self.audio = [[] for _ in range(self.rows)]

    def __call__(self, rows: torch.Tensor, audio: torch.Tensor) -> None:
        for i, row in enumerate(rows.tolist()):
            self.audio[row].append(audio[i].float().cpu())

"""The Qwen3-TTS engine: a line at a time (or a batch of lines), from a local 12 Hz checkpoint.

One checkpoint per job, and its variant decides the voices: CustomVoice speaks the nine named speakers
(``Qwen3SpeakerSpec``), VoiceDesign speaks described voices (``DesignSpec``), Base clones a consented
clip (``CloneSpec``). A cloned voice's prompt (speaker embedding, and the clip's codes when its
transcript is known) is built once per voice and reused for every line, so the voice stays the same
across turns. The director's plan becomes the ``instruct`` text (``instruct``) for models that follow
it (1.7B CustomVoice and VoiceDesign); for the others the job reports it as not performed.
Generation is batched and guarded against runaways (``generation``).
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from ...errors import BadInput, Unavailable
from ...voices import CloneSpec, DesignSpec, Qwen3SpeakerSpec, VoiceTemplate
from ..base import Capabilities, ChunkAudio, Engine, Segment
from . import compat, configuration
from .generation import Request, Sampling, Take, guarded
from .instruct import instruct_text

LANGUAGE_NAMES = {"en": "english", "zh": "chinese", "mixed": "auto"}
PLAN_FIELDS = frozenset({"rate", "emotion", "emphasis"})  # performed through instruct text
# Seconds of compute per second of audio (users report 1.2-1.4 on a desktop CPU; bench/bench_qwen3.py).
TYPICAL_RTF = {"cpu": 1.3, "cuda": 0.5}
DEFAULT_BATCH = {"cpu": 4}


class Qwen3Engine(Engine):
    capabilities = Capabilities(name="qwen3", languages=frozenset({"en", "zh", "mixed"}), max_speakers=64,
                                cloning=True, seeded=True, plan_fields=PLAN_FIELDS, max_chunk_chars=600,
                                typical_rtf=TYPICAL_RTF["cpu"])
    version = f"qwen3-{compat.PACKAGE}-{compat.PINNED}/1"

    def __init__(self, model_dir: str | Path | None = None, device: str | None = None, dtype: str | None = None):
        self.checkpoint = configuration.inspect_checkpoint(model_dir)
        self.setup_warnings: list[str] = []
        self.device, self.dtype, self.attention = configuration.choose_runtime(device, dtype, self.setup_warnings)
        fields = PLAN_FIELDS if self.checkpoint.instructable else frozenset()
        self.capabilities = replace(Qwen3Engine.capabilities, plan_fields=fields,
                                    typical_rtf=TYPICAL_RTF.get(self.device.type, 1.3))
        self._model = None
        self._prompts: dict[str, object] = {}  # clone prompt per voice (clip, transcript)
        self._lock = threading.Lock()  # one generate at a time: sampling draws from the global RNG

    # -- model -----------------------------------------------------------------------------------------

    @property
    def model(self):
        if self._model is None:
            model, notes = compat.load_model(str(self.checkpoint.path), dtype=self.dtype,
                                             attn_implementation=self.attention)
            self.setup_warnings.extend(notes)
            if self.device.type != "cpu":  # moved by hand: a device_map would need accelerate
                codec = model.model.speech_tokenizer
                model.model.to(self.device)
                codec.model.to(self.device)
                codec.device = self.device
            self._model = model
        return self._model

    def default_batch(self) -> int:
        if self.device.type != "cuda":
            return DEFAULT_BATCH["cpu"]
        from .preflight import batch_for_memory

        return batch_for_memory(self.checkpoint, self.dtype)

    # -- voices ----------------------------------------------------------------------------------------

    def check_voice(self, voice: VoiceTemplate) -> None:
        kind, variant = voice.spec.kind, self.checkpoint.variant
        if kind != self.checkpoint.voice_kind:
            wanted = {"qwen3-speaker": "a CustomVoice", "design": "a VoiceDesign", "clone": "a Base"}.get(kind)
            raise BadInput(f"voice {voice.id!r} ({kind}) needs {wanted or 'another'} Qwen3-TTS checkpoint; "
                           f"{self.checkpoint.path.name} is a {variant} model")
        if isinstance(voice.spec, Qwen3SpeakerSpec) and voice.spec.speaker.lower() not in self.checkpoint.speakers:
            raise BadInput(f"speaker {voice.spec.speaker!r} is not in {self.checkpoint.path.name}; it has: "
                           f"{', '.join(self.checkpoint.speakers)}")
        if isinstance(voice.spec, CloneSpec) and not Path(voice.spec.clip).expanduser().is_file():
            raise BadInput(f"the clip of voice {voice.id!r} is missing: {voice.spec.clip}")

    def voice_of(self, template: VoiceTemplate):
        """What the model is given for ``template``: a speaker name, or the voice's clone prompt (built once)."""
        spec = template.spec
        if isinstance(spec, Qwen3SpeakerSpec):
            return spec.speaker
        if isinstance(spec, DesignSpec):
            return None
        key = f"{spec.clip}\0{spec.transcript}"
        if key not in self._prompts:
            from ..vibevoice.processing import load_clip

            clip = load_clip(Path(spec.clip).expanduser(), name=f"{template.id}'s clip")
            (item,) = self.model.create_voice_clone_prompt(
                ref_audio=(clip.audio, 24000), ref_text=spec.transcript or None,
                x_vector_only_mode=not spec.transcript)
            self._prompts[key] = item
        return self._prompts[key]

    def instruct_for(self, template: VoiceTemplate, delivery, hints=(), verbatim: str | None = None) -> str:
        """The instruct text a line is given: a designed voice's description first, then the delivery
        (``verbatim``, a client's own instruction, exactly as sent, in place of the plan's)."""
        description = template.spec.description if isinstance(template.spec, DesignSpec) else ""
        if not self.checkpoint.instructable:
            return description
        if verbatim and verbatim.strip():
            return f"{description} {verbatim}" if description else verbatim
        return instruct_text(delivery, hints, description)

    # -- speaking ----------------------------------------------------------------------------------------

    def synthesize(self, segments: list[Segment], voices: dict[str, VoiceTemplate]) -> ChunkAudio:
        requests = [Request(s.text, s.language, s.delivery.speed, self.instruct_for(voices[s.speaker], s.delivery),
                            self.voice_of(voices[s.speaker])) for s in segments]
        takes = self.speak(requests, Sampling(), seed=0, rerolls=0)
        pieces, spans, offset = [], [], 0
        for seg, take in zip(segments, takes):
            pieces.append(take.audio)
            spans.append((seg.line_index, offset, offset + take.audio.size))
            offset += take.audio.size
        return ChunkAudio(np.concatenate(pieces) if pieces else np.zeros(0, np.float32), spans)

    def speak(self, requests: list[Request], sampling: Sampling, seed: int, rerolls: int) -> list[Take]:
        """Generate ``requests`` as one batch (re-rolling implausible takes); one take per request."""
        with self._lock:
            return guarded(lambda rows, s, cap: self._generate(rows, sampling, s, cap), requests, seed, rerolls)

    def _generate(self, rows: list[Request], sampling: Sampling, seed: int, cap: int) -> list[np.ndarray]:
        import torch

        model, kwargs = self.model, sampling.kwargs(cap)
        torch.manual_seed(seed)
        texts, languages = [r.text for r in rows], [LANGUAGE_NAMES[r.language] for r in rows]
        with torch.inference_mode():
            if self.checkpoint.variant == "custom_voice":
                wavs, _ = model.generate_custom_voice(texts, speaker=[r.voice for r in rows], language=languages,
                                                      instruct=[r.instruct for r in rows], **kwargs)
            elif self.checkpoint.variant == "voice_design":
                wavs, _ = model.generate_voice_design(texts, instruct=[r.instruct for r in rows],
                                                      language=languages, **kwargs)
            else:
                wavs, _ = model.generate_voice_clone(texts, language=languages,
                                                     voice_clone_prompt=[r.voice for r in rows], **kwargs)
        return [np.asarray(w, np.float32).reshape(-1) for w in wavs]


def batch_seed(seed: int, first_key: str) -> int:
    """The seed of a batch: the job's seed and the batch's first chunk, so a resumed batch draws the same."""
    return (seed * 1_000_003 + zlib.crc32(first_key.encode())) % 2**31


def available() -> bool:
    try:
        compat.load()
    except Unavailable:
        return False
    return True

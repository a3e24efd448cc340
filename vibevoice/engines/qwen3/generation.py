"""Batched generation with a runaway guard: every take's length is checked against the text's.

Qwen3-TTS sometimes never emits its end-of-speech code and talks on to ``max_new_tokens`` (minutes of
gibberish, users report). Each line therefore gets a cap from its expected duration
(``frame_cap``), and a take that runs into the cap, or is far too short for its text, is generated
again with a new seed (``GUARD``); what was rejected is recorded with the seed and the reason. After
the allowed re-rolls the last take is kept, and the record says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...script import estimate_speech_seconds

FRAMES_PER_SECOND = 12.5  # the 12 Hz codec: 1920 samples per frame at 24 kHz
SAMPLES_PER_FRAME = 1920
CAP_FACTOR, CAP_PAD_S = 2.5, 2.0  # cap = 2.5 × expected + 2 s
SHORT_FACTOR, SHORT_MIN_S = 0.25, 1.5  # too short: under a quarter of the expected length (lines over 1.5 s)
SEED_STEP = 7919


@dataclass(frozen=True)
class Sampling:
    """The knobs of one generate call (the job's settings); temperature 0 = greedy decoding."""

    temperature: float = 0.9
    top_p: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.05

    def kwargs(self, max_new_tokens: int) -> dict:
        greedy = self.temperature <= 0
        params = dict(do_sample=not greedy, top_k=self.top_k, top_p=self.top_p,
                      temperature=self.temperature if not greedy else 1.0, repetition_penalty=self.repetition_penalty)
        return {**params, **{f"subtalker_{k}": v for k, v in params.items() if k != "repetition_penalty"},
                "subtalker_dosample": not greedy, "max_new_tokens": max_new_tokens}


@dataclass
class Request:
    """One line to speak: words, model language name, voice (speaker name, description or clone prompt)."""

    text: str
    language: str  # "en" | "zh" | "mixed"
    speed: float
    instruct: str = ""
    voice: object = None  # speaker name (str) or a clone prompt item


@dataclass
class Take:
    audio: np.ndarray
    frames: int
    cap: int
    rejected: list[str] = field(default_factory=list)


def expected_seconds(text: str, language: str, speed: float = 1.0) -> float:
    return estimate_speech_seconds(text, language) / max(speed, 0.1)


def frame_cap(text: str, language: str, speed: float = 1.0) -> int:
    """``max_new_tokens`` for a line: generous for its text, bounded so a runaway stops early."""
    return math.ceil(FRAMES_PER_SECOND * (CAP_FACTOR * expected_seconds(text, language, speed) + CAP_PAD_S))


def verdict(take_frames: int, cap: int, expected_s: float) -> str | None:
    """Why a take's length is implausible, or None when it is fine."""
    if take_frames >= cap:
        return f"no end of speech within {cap} frames ({cap / FRAMES_PER_SECOND:.1f} s)"
    seconds = take_frames / FRAMES_PER_SECOND
    if expected_s > SHORT_MIN_S and seconds < SHORT_FACTOR * expected_s:
        return f"{seconds:.1f} s for about {expected_s:.1f} s of text"
    return None


def guarded(generate, requests: list[Request], seed: int, rerolls: int) -> list[Take]:
    """Run ``generate(requests, seed, cap) -> [audio]`` and re-roll implausible rows with new seeds."""
    # The talker's last allowed step yields no frame: a line alone at max_new_tokens=cap gives cap - 1 frames,
    # so that is where a row of a batch (which runs to the batch's largest cap) is cut too.
    caps = [frame_cap(r.text, r.language, r.speed) - 1 for r in requests]
    takes: list[Take | None] = [None] * len(requests)
    todo = list(range(len(requests)))
    for attempt in range(rerolls + 1):
        attempt_seed = seed + SEED_STEP * attempt
        audios = generate([requests[i] for i in todo], attempt_seed, max(caps[i] for i in todo) + 1)
        again = []
        for i, audio in zip(todo, audios):
            frames = math.ceil(audio.size / SAMPLES_PER_FRAME)
            previous = takes[i].rejected if takes[i] else []
            takes[i] = Take(np.asarray(audio, np.float32)[: caps[i] * SAMPLES_PER_FRAME], min(frames, caps[i]),
                            caps[i], previous)
            why = verdict(frames, caps[i], expected_seconds(requests[i].text, requests[i].language, requests[i].speed))
            if why:
                last = attempt == rerolls
                takes[i].rejected.append(f"seed {attempt_seed}: {why}" + ("; kept, no re-rolls left" if last else ""))
                again.append(i)
        todo = again
        if not todo:
            break
    return takes

"""The QA gate while rendering (``render --qa``): each chunk is heard, scored and re-rendered if it fails.

A listener's top complaints are skipped or garbled words and a line in the wrong voice. With QA on,
every fresh take goes through ``qa.check.check_take`` (Whisper for the words, the speaker encoder for
the voice, against a reference embedding of every voice in the cast). A take that fails is rendered
again, up to ``RenderSettings.qa_retakes`` times, each time a little differently: the embedded engine
is deterministic, so a retake changes the speaking rate slightly (which changes the model's timing
and usually its slip); a sampling engine gets a new seed. The best take is kept (passing first,
then fewest problems, lowest error rate, clearest voice margin) and every take's scores go into the
chunk's record in the manifest, so the job report can say what was re-rendered and why.

The recogniser's word times of the kept take are stored too: the export uses them to time subtitle
cues to the speech and to split long lines into sentence cues.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel

from ..audio import SAMPLE_RATE
from ..errors import Unavailable
from ..job.model import Take, TimedWord
from ..voices import VoiceTemplate

# Rate changes tried in turn by retakes of a deterministic engine (1.0 = the take as planned).
RATE_STEPS = (1.0, 0.94, 1.06, 0.88, 1.12, 0.84)


class Verdict(BaseModel):
    takes: list[Take]
    words: list[TimedWord]


def require_models() -> None:
    """Fail before rendering, with the fix, when the ``qa`` extra (the models QA listens with) is missing."""
    missing = [name for name in ("faster_whisper", "resemblyzer", "jiwer") if importlib.util.find_spec(name) is None]
    if missing:
        raise Unavailable(f"automatic QA needs the quality-check models ({', '.join(missing)} not installed): "
                         "run ./scripts/install.sh qa, or render without QA")


def references(voices: dict[str, VoiceTemplate], languages: dict[str, str]) -> dict[str, np.ndarray]:
    """Speaker → the embedding their voice should produce (rendered once per voice, cached on disk)."""
    from .speakers import voice_reference  # the qa extra's models: imported only when QA runs
    return {speaker: voice_reference(voice, languages.get(speaker)) for speaker, voice in voices.items()}


def best_take(text: str, language: str, speaker: str, speed: float, speak: Callable[[float], np.ndarray],
              refs: dict[str, np.ndarray], retakes: int) -> tuple[np.ndarray, Verdict]:
    """Render (``speak(speed)``) and score takes until one passes or ``retakes`` more have been tried."""
    from .check import check_take
    scored: list[tuple[tuple, np.ndarray, Take, list]] = []
    for number, step in enumerate(RATE_STEPS[: retakes + 1], 1):
        audio = np.asarray(speak(round(speed * step, 4)), np.float32)
        score = check_take(audio, text, language if language != "mixed" else "zh", speaker, refs)
        take = Take(number=number, variant="as planned" if step == 1.0 else f"rate x{step:.2f}",
                    speed=round(speed * step, 4), passed=score.passed, error_rate=score.wer, unit=score.unit,
                    similarity=score.similarity, margin=score.margin, closest=score.closest,
                    transcript=score.transcript, reasons=score.reasons)
        rank = (not score.passed, len(score.reasons), score.wer, -(score.margin or 0.0))
        scored.append((rank, audio, take, score.words))
        if score.passed:
            break
    _, audio, kept, heard = min(scored, key=lambda item: item[0])
    kept.kept = True
    words = [TimedWord(text=w.text, start=round(w.start, 3), end=round(w.end, 3)) for w in heard]
    return audio, Verdict(takes=[take for _, _, take, _ in scored], words=words)


def summary(chunks) -> list[str]:
    """One sentence per re-rendered chunk: which line, why, and which take was kept."""
    out = []
    for chunk in chunks:
        if len(chunk.takes) < 2:
            continue
        first, kept = chunk.takes[0], next(t for t in chunk.takes if t.kept)
        outcome = f"take {kept.number} ({kept.variant}) kept" + ("" if kept.passed else ", still failing: "
                                                                   + "; ".join(kept.reasons))
        out.append(f"line {chunk.line_index + 1}: {'; '.join(first.reasons)} → {len(chunk.takes)} takes, {outcome}")
    return out


def check_lines(audio: np.ndarray, spans: list[tuple[int, int, int]], lines, refs: dict[str, np.ndarray]) -> list[Take]:
    """Score every line inside a whole-script take (VibeVoice speaks the script as one stream).

    Such an engine cannot re-render one line on its own; the scores go into the job report, and a
    failing line can be re-rendered by the user (``/lines/{n}/rerender``) or the job re-seeded.
    """
    from .check import check_take
    takes = []
    for line_index, begin, end in spans:
        line = lines[line_index]
        score = check_take(audio[begin:end], line.text, line.language if line.language != "mixed" else "zh",
                           line.speaker, refs)
        takes.append(Take(number=1, line_index=line_index, variant="whole-script take", speed=1.0,
                          passed=score.passed, error_rate=score.wer, unit=score.unit, similarity=score.similarity,
                          margin=score.margin, closest=score.closest, transcript=score.transcript,
                          reasons=score.reasons, kept=True))
    return takes


def timed_spans(audio: np.ndarray, lines, language: str) -> list[tuple[int, int, int]]:
    """Where each line lies in a whole-script take, from the recogniser's word times."""
    from .recognise import line_times
    times = line_times(audio, SAMPLE_RATE, [line.text for line in lines], language)
    return [(line.index, int(start * SAMPLE_RATE), int(end * SAMPLE_RATE)) for line, (start, end) in zip(lines, times)]
